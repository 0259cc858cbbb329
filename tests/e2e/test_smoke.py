"""``python -m infra.smoke`` against the local runner, as a user runs it after a deploy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.receiver import CallbackReceiver
from tests.support.stack import ROOT

pytestmark = pytest.mark.e2e

STEPS = ["health", "types", "auth", "submit", "stream", "state", "list", "cancel", "callback"]


def smoke(stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.smoke", "--url", stack.url, "--key", stack.api_key, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_every_step_passes_with_a_callback(stack):
    with CallbackReceiver() as receiver:
        done = smoke(stack, "--callback", receiver.url)
        lines = done.stdout.splitlines()
        assert done.returncode == 0, done.stdout + done.stderr
        assert [line.split()[:2] for line in lines[1:-1]] == [["PASS", step] for step in STEPS]
        assert lines[-1] == "smoke: 9 passed, 0 failed"
        assert done.stderr == ""
        # The callback the smoke test saw DELIVERED is the one that reached the receiver.
        submitted = next(line for line in lines if line.startswith("PASS  submit"))
        task_id = submitted.split("sum task ")[1].split()[0]
        assert [p["task_id"] for p in receiver.payloads()] == [task_id]
        assert receiver.payloads()[0]["status"] == "COMPLETED"
    assert "local-development-key" not in done.stdout
    with stack.client() as client:
        state = client.get(f"/api/tasks/{task_id}/state").json()
    assert state["status"] == "COMPLETED" and state["metadata"] == {"source": "smoke"}


def test_json_report_without_a_callback(stack):
    done = smoke(stack, "--json", "--timeout", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and (report["passed"], report["failed"]) == (8, 0)
    assert [s["step"] for s in report["steps"]] == STEPS[:-1]
    assert done.stderr.splitlines()[-1] == "smoke: 8 passed, 0 failed"


def test_a_wrong_key_fails_the_steps_that_need_one(stack):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.smoke",
            "--url",
            stack.url,
            "--key",
            "tr_nobody00_wrong-secret",
            "--timeout",
            "10",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[1].startswith("PASS  health")
    assert lines[2].startswith("FAIL  types     GET /api/task-types answered 401")
    assert "wrong-secret" not in done.stdout
    assert lines[-1].endswith(" failed") and not lines[-1].endswith(" 0 failed")
