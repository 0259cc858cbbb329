"""The ``taskrunner`` command against the local runner, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.procs import free_port
from tests.support.stack import ROOT

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).parent / "taskrunner"  # installed by `pip install -e ./cli` (make install)


def taskrunner(
    stack, *args: str, cwd: Path, url: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "taskrunner_cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUNNER_")}
    env["PYTHONPATH"] = str(ROOT / "cli")
    return subprocess.run(
        [*command, *args, "--url", url or stack.url, "--api-key", stack.api_key],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_submit_and_follow_to_completion(stack, tmp_path):
    done = taskrunner(stack, "submit", "sleep", "seconds=1", "--follow", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"slept_seconds": 1, "message": "Task completed after 1 seconds"}
    first, *progress = done.stderr.splitlines()
    assert first.startswith("accepted sleep task ")
    task_id = first.split()[3].rstrip(";")
    assert progress[-1].startswith("[##############################] 100.0%  COMPLETED")
    assert any("RUNNING" in line for line in progress)
    with stack.client() as client:
        state = client.get(f"/api/tasks/{task_id}/state").json()
    assert state["status"] == "COMPLETED" and state["parameters"] == {"seconds": 1}


def test_a_failed_task_exits_1(stack, tmp_path):
    failed = taskrunner(stack, "submit", "fail", "retryable=false", "message=no luck", "--follow", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.rstrip().endswith("FAILED: NonRetryableError: no luck")


def test_state_list_cancel_and_types(stack, tmp_path):
    submitted = taskrunner(stack, "submit", "sleep", "seconds=30", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()

    state = taskrunner(stack, "state", task_id, "--json", cwd=tmp_path)
    assert state.returncode == 0 and json.loads(state.stdout)["task_id"] == task_id

    listed = taskrunner(stack, "list", "--active", "--name", "sleep", "--limit", "50", cwd=tmp_path)
    assert listed.returncode == 0 and task_id in listed.stdout

    cancelled = taskrunner(stack, "cancel", task_id, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(task_id)

    shown = taskrunner(stack, "state", task_id, cwd=tmp_path)
    cancelled_now = any(line.split()[:2] == ["status", "CANCELLED"] for line in shown.stdout.splitlines())
    assert shown.returncode == (1 if cancelled_now else 0)
    assert shown.stdout.startswith(f"task        {task_id}\ntype        sleep\n")

    types = taskrunner(stack, "types", cwd=tmp_path)
    assert types.returncode == 0 and "sleep  (queue default" in types.stdout

    missing = taskrunner(stack, "state", "no-such-task", cwd=tmp_path)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == "taskrunner: error 404: task no-such-task not found\n"

    refused = taskrunner(stack, "submit", "sleep", "seconds=-1", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("taskrunner: error 422: parameters.seconds: ")


def test_an_unreachable_service_exits_3(stack, tmp_path):
    down = taskrunner(stack, "list", cwd=tmp_path, url=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3
    assert down.stderr.startswith("taskrunner: cannot reach http://127.0.0.1:")
    assert down.stderr.count("\n") == 1


def test_wait_attempts_and_retry_against_the_service(stack, tmp_path):
    """The commands that need the service's attempt history and retry endpoint, end to end."""
    submitted = taskrunner(stack, "--json", "submit", "fail", "retryable=false", "message=bad input", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    task_id = json.loads(submitted.stdout)["task_id"]
    waited = taskrunner(stack, "wait", task_id[:8], cwd=tmp_path)  # a short id
    assert waited.returncode == 1, (waited.stdout, waited.stderr)
    assert waited.stdout.split() == [task_id, "FAILED"]
    attempts = taskrunner(stack, "--json", "attempts", task_id, cwd=tmp_path)
    assert attempts.returncode == 0, attempts.stderr
    [entry] = json.loads(attempts.stdout)
    assert entry["outcome"] == "FAILED" and entry["error"]["type"] == "NonRetryableError"
    assert any("tasks/fail.py" in line for line in entry["error"]["traceback"])
    retried = taskrunner(stack, "--json", "retry", task_id, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    new_id = json.loads(retried.stdout)["task_id"]
    assert new_id != task_id
    with stack.client() as client:
        new = client.get(f"/api/tasks/{new_id}/state").json()
    assert new["retry_of"] == task_id and new["parameters"] == {"retryable": False, "message": "bad input"}
    completed = taskrunner(stack, "--json", "submit", "sum", "a=1", "b=2", cwd=tmp_path)
    done_id = json.loads(completed.stdout)["task_id"]
    assert taskrunner(stack, "wait", done_id, cwd=tmp_path).returncode == 0
    refused = taskrunner(stack, "retry", done_id, cwd=tmp_path)  # only FAILED or CANCELLED tasks
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "409" in refused.stderr and "COMPLETED" in refused.stderr
