"""The local stack keeps its data across restarts: tasks accepted before a Ctrl-C (or a
``kill -9`` of the runner and its endpoint) are found after ``make run`` again and carried to a
terminal status; API keys still work; ``--fresh`` starts empty. Ctrl-C stops cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.persistence import SNAPSHOT
from tests.support.processes import descendants, wait_gone
from tests.support.stack import RunningStack, start_stack

pytestmark = pytest.mark.e2e

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
FAST = ["--reconcile-every", "1", "--set", "LEASE_GRACE_SECONDS=1", "--set", "PENDING_GRACE_SECONDS=2"]
N = 50


def start(tmp: Path, aws_state: Path, *extra: str) -> RunningStack:
    tmp.mkdir(parents=True, exist_ok=True)
    return start_stack(tmp, args=[*FAST, "--aws-state-dir", str(aws_state), *extra], own_group=True)


def submit_load(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """N tasks: quick sums and a few seconds' sleeps, some of them running when we stop."""
    bodies: dict[str, dict[str, Any]] = {}
    for i in range(N):
        body: dict[str, Any] = (
            {"name": "sleep", "parameters": {"seconds": 3}, "timeout_seconds": 10}
            if i % 5 == 0
            else {"name": "sum", "parameters": {"numbers": [i, 1]}}
        )
        answer = client.post("/api/tasks", json=body)
        assert answer.status_code == 202, answer.text
        bodies[answer.json()["task_id"]] = body
    return bodies


def wait_for_snapshot_after(aws_state: Path, moment: float, *, timeout: float) -> None:
    """Until the endpoint's snapshot was taken after ``moment``: it holds every call answered
    before then (a snapshot is taken with every call held off; see infra/local/persistence.py)."""
    path = aws_state / SNAPSHOT
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            with path.open("rb") as f:
                if json.loads(f.readline())["saved_at"] > moment:
                    return
        time.sleep(0.1)
    raise AssertionError(f"no snapshot taken after the last task was accepted within {timeout} s")


def statuses(client: httpx.Client, ids: list[str]) -> dict[str, int | str]:
    found: dict[str, int | str] = {}
    for task_id in ids:
        answer = client.get(f"/api/tasks/{task_id}/state")
        found[task_id] = answer.json()["status"] if answer.status_code == 200 else answer.status_code
    return found


def wait_all_terminal(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, int | str]:
    deadline = time.monotonic() + timeout
    while True:
        found = statuses(client, ids)
        if all(s in TERMINAL for s in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def created_key(stack: RunningStack) -> str:
    """Another API key, made as `make keys ARGS="create ..."` does, in the stack's table."""
    import boto3
    from taskrunner.adapters.dynamodb_keys import DynamoDbApiKeyStore

    from infra.keys import create_key

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    ddb = session.client("dynamodb", endpoint_url=stack.state["endpoint"])
    store = DynamoDbApiKeyStore(ddb, stack.state["physical"]["ApiKeysTable"]["Ref"])
    raw, _ = create_key(store, "alice", "kept across restarts")
    return raw


def test_ctrl_c_then_run_again_keeps_every_task_and_key_and_fresh_starts_empty(tmp_path: Path) -> None:
    aws_state = tmp_path / "aws-state"
    first = start(tmp_path / "first", aws_state)
    try:
        alice = created_key(first)
        with first.client() as client:
            ids = list(submit_load(client))
            time.sleep(1.5)  # some sums done, some sleeps running
            before = statuses(client, ids)
        tree = descendants(first.proc.pid)
        stopped = time.monotonic()
        os.killpg(first.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        code = first.proc.wait(15)
        stop_seconds = time.monotonic() - stopped
    finally:
        first.stop()
    output = first.log()
    assert code in (0, 130), (code, output[-3000:])
    assert stop_seconds < 10, stop_seconds
    assert "Traceback" not in output, output[-5000:]
    assert "aws-state: saved" in output, output[-3000:]
    assert not wait_gone(tree, 5), "processes outlived the runner"
    unfinished = [t for t, s in before.items() if s not in TERMINAL]

    second = start(tmp_path / "second", aws_state)
    try:
        assert "aws-state: restored" in second.log(), second.log()[-3000:]
        with second.client() as client:
            found = statuses(client, ids)
            assert all(s != 404 for s in found.values()), found
            final = wait_all_terminal(client, ids, 90)
            assert client.get("/api/tasks", params={"limit": 1}).status_code == 200  # the dev key
        with second.client(api_key=alice) as client:
            assert client.get("/api/tasks", params={"limit": 1}).status_code == 200
    finally:
        second.stop(signal.SIGINT)
    terminal = [t for t, s in final.items() if s in TERMINAL]
    print(
        f"accepted {len(ids)} ({len(unfinished)} not terminal at Ctrl-C, stopped in {stop_seconds:.1f} s); "
        f"found after restart {sum(1 for s in found.values() if s != 404)}; terminal {len(terminal)}"
    )
    assert len(terminal) == len(ids), {t: s for t, s in final.items() if s not in TERMINAL}
    assert all(final[t] == "COMPLETED" for t in ids), final

    third = start(tmp_path / "third", aws_state, "--fresh")
    try:
        with third.client() as client:
            assert set(statuses(client, ids[:5]).values()) == {404}
        with third.client(api_key=alice) as client:
            assert client.get("/api/tasks", params={"limit": 1}).status_code == 401
    finally:
        third.stop()


def test_kill_9_of_the_runner_and_its_endpoint_loses_at_most_the_snapshot_window(tmp_path: Path) -> None:
    aws_state = tmp_path / "aws-state"
    first = start(tmp_path / "first", aws_state, "--snapshot-every", "1")
    try:
        with first.client() as client:
            ids = list(submit_load(client))
            accepted_by = time.time()
        # the snapshot window: until a snapshot taken after the last task was accepted exists
        # (its wait grows with what the last one cost, so a fixed sleep may be too short)
        wait_for_snapshot_after(aws_state, accepted_by, timeout=60)
        tree = descendants(first.proc.pid)
        for proc in tree:
            if "moto_server" in proc.cmdline:
                os.kill(proc.pid, signal.SIGKILL)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        assert not wait_gone(tree, 5)
    finally:
        first.stop()

    second = start(tmp_path / "second", aws_state)
    try:
        with second.client() as client:
            found = statuses(client, ids)
            final = wait_all_terminal(client, ids, 90)
    finally:
        second.stop()
    missing = [t for t, s in found.items() if s == 404]
    terminal = [t for t, s in final.items() if s in TERMINAL]
    print(f"kill -9: accepted {len(ids)}; found after restart {len(ids) - len(missing)}; terminal {len(terminal)}")
    assert not missing, missing
    assert len(terminal) == len(ids), {t: s for t, s in final.items() if s not in TERMINAL}
