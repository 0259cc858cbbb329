"""Revoking an API key on the local stack ends its stream links: the link answers 401 and an
open stream ends, within the key cache window (shortened here through KEY_CACHE_SECONDS)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import ROOT, start_stack

pytestmark = pytest.mark.e2e

CACHE_SECONDS = 2
SLACK_SECONDS = 5


def keys_cli(state_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.keys", "--state-file", str(state_file), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_revoking_a_key_ends_its_stream_links_within_the_cache_window(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, args=["--set", f"KEY_CACHE_SECONDS={CACHE_SECONDS}"])
    try:
        state_file = tmp_path / f"runner-{stack.url.rsplit(':', 1)[1]}.json"
        created = json.loads(keys_cli(state_file, "create", "--owner", "erin", "--name", "revoke-test").stdout)
        key, key_id = created["api_key"], created["key_id"]
        with stack.client(api_key=key) as client:
            answer = client.post("/api/tasks", json={"name": "sleep", "parameters": {"seconds": 30}})
            assert answer.status_code == 202, answer.text
            link = answer.json()["links"]["stream"]
            assert client.get(link, headers={"Accept": "application/json"}).status_code == 200

            # an open stream, read in the background
            lines: list[tuple[float, str]] = []
            ended: dict[str, Any] = {}

            def follow() -> None:
                with httpx.Client(timeout=60) as reader:
                    url = link if link.startswith("http") else f"{stack.url}{link}"
                    with reader.stream("GET", url) as response:
                        ended["status"] = response.status_code
                        for line in response.iter_lines():
                            lines.append((time.monotonic(), line))
                ended["at"] = time.monotonic()

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            deadline = time.monotonic() + 20
            while not any(line.startswith("data:") for _, line in lines) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ended.get("status") == 200 and lines, "the stream did not open"

            keys_cli(state_file, "revoke", key_id)
            revoked = time.monotonic()

            # the link answers 401 within the cache window
            status = 200
            while time.monotonic() - revoked < CACHE_SECONDS + SLACK_SECONDS:
                status = client.get(link, headers={"Accept": "application/json"}).status_code
                if status == 401:
                    break
                time.sleep(0.2)
            refused_after = time.monotonic() - revoked
            assert status == 401, f"the stream link still answers {status} {refused_after:.1f} s after revocation"

            # and the open stream ended with an unauthorized event
            reader.join(CACHE_SECONDS + SLACK_SECONDS)
            assert not reader.is_alive(), "the open stream did not end after the key was revoked"
            ended_after = ended["at"] - revoked
            text = [line for _, line in lines]
            assert "event: unauthorized" in text, text[-5:]
            assert any("revoked" in line for line in text if line.startswith("data:"))
            assert ended_after <= CACHE_SECONDS + SLACK_SECONDS
            # the API refuses the key itself too
            assert client.get("/api/task-types").status_code == 401
        print(f"link refused {refused_after:.1f} s and open stream ended {ended_after:.1f} s after revocation")
    finally:
        stack.stop()
