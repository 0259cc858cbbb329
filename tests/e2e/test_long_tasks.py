"""Long jobs through the whole local stack, with the worker's timeout cut to 20 s
(``--function-timeout WorkerFunction=20``) so that continuation shows in seconds:

- a 70 s ``sleep`` completes over several segments in one attempt, its progress never going
  back, its stream showing every segment (figures: tests/e2e/artifacts/long-task.json);
- a cancel while the task waits between two segments ends it at once, and it stays ended;
- a worker killed mid-segment: the next attempt resumes from the last checkpoint.

One worker environment (``--max-concurrency 1``), so a task submitted while a long one runs
waits its turn, as it would with a worker concurrency of 1 on AWS.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import function_processes, kill, wait_gone
from tests.support.stack import sse_events, start_stack

WORKER = "taskrunner.entrypoints.worker.handler"
WORKER_TIMEOUT = 20
ARTIFACTS = Path(__file__).parent / "artifacts"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(
        tmp_path_factory.mktemp("long"),
        args=[
            "--reconcile-every",
            "1",
            "--function-timeout",
            f"WorkerFunction={WORKER_TIMEOUT}",
            "--max-concurrency",
            "1",
        ],
    )
    yield running
    running.stop()


def submit(client: Any, seconds: float) -> str:
    answer = client.post("/api/tasks", json={"name": "sleep", "parameters": {"seconds": seconds}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["task_id"])


def state(client: Any, task_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/tasks/{task_id}/state")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_for(client: Any, task_id: str, check: Any, timeout: float, what: str, every: float = 0.05) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = state(client, task_id)
        if check(current):
            return current
        if current["status"] in TERMINAL:
            raise AssertionError(f"{what}: the task ended first: {current}")
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s; last state {current}")


def test_a_70_second_sleep_runs_over_several_segments_in_one_attempt(stack):
    assert "Timeout: 20 s  [WorkerFunction]" in stack.log(), "the runner declares the shortened timeout"
    with stack.client() as client:
        task_id = submit(client, 70)
        submitted = time.monotonic()
        events = sse_events(client, f"/api/tasks/{task_id}/stream", timeout=240)
    final = events[-1]["data"]
    assert final["status"] == "COMPLETED", final
    assert final["result"] == {"slept_seconds": 70.0, "message": "Task completed after 70 seconds"}
    assert final["attempts"] == 1
    assert final["segments"] >= 3, "a 70 s task under a 20 s worker timeout needs at least three segments"
    progress = [e["data"]["progress"]["percent"] for e in events]
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    # the stream shows it all: every segment, and the task waiting between them
    seen_segments = sorted({e["data"]["segments"] for e in events if e["data"]["status"] == "RUNNING"})
    assert seen_segments == list(range(1, final["segments"] + 1)), seen_segments
    assert all(e["data"]["status"] in ("PENDING", "RUNNING", "COMPLETED") for e in events)
    figures = hand_over_figures(events, submitted)
    assert len(figures["hand_overs"]) == final["segments"] - 1
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "long-task.json").write_text(json.dumps(figures, indent=2) + "\n")


def hand_over_figures(events: list[dict[str, Any]], submitted: float) -> dict[str, Any]:
    """Per hand-over: the gap in the stream between the last progress of a segment and the
    first progress of the next (what a client sees), and the segments' lengths."""
    last_change: dict[int, tuple[float, float]] = {}  # segment -> (time, percent) of its last progress change
    first_change: dict[int, tuple[float, float]] = {}
    previous = None
    for e in events:
        data = e["data"]
        percent = data["progress"]["percent"]
        if data["status"] not in ("RUNNING", "COMPLETED") or percent == previous:
            previous = percent
            continue
        seg = data["segments"]
        first_change.setdefault(seg, (e["at"], percent))
        last_change[seg] = (e["at"], percent)
        previous = percent
    hand_overs = []
    for seg in sorted(last_change)[:-1]:
        if seg + 1 in first_change:
            hand_overs.append(
                {
                    "after_segment": seg,
                    "stream_gap_seconds": round(first_change[seg + 1][0] - last_change[seg][0], 2),
                    "progress_at_hand_over": last_change[seg][1],
                }
            )
    final = events[-1]["data"]
    return {
        "task_seconds": 70,
        "worker_timeout_seconds": WORKER_TIMEOUT,
        "submit_to_completed_seconds": round(events[-1]["at"] - submitted, 2),
        "segments": final["segments"],
        "attempts": final["attempts"],
        "events": len(events),
        "item_writes": final["version"],  # one per stored change, the create included
        "hand_overs": hand_overs,
    }


def test_a_cancel_between_two_segments_ends_the_task_at_once(stack):
    with stack.client() as client:
        long_id = submit(client, 60)
        wait_for(client, long_id, lambda s: s["status"] == "RUNNING" and s["progress"]["percent"] > 0, 60, "start")
        # with one worker environment, a task submitted now runs before the long task's next
        # segment: the long task waits between two segments for all of that one's run
        blocker = submit(client, 6)
        waiting = wait_for(client, long_id, lambda s: s["between_segments"], 60, "hand-over")
        assert waiting["status"] == "RUNNING" and waiting["segments"] == 1 and waiting["attempts"] == 1
        answer = client.post(f"/api/tasks/{long_id}/cancel")
        assert answer.status_code == 200, answer.text
        cancelled = answer.json()
        assert cancelled["status"] == "CANCELLED", "nothing runs it between segments: cancelled at once"
        assert cancelled["between_segments"] is False and cancelled["completed_at"]
        wait_for(client, blocker, lambda s: s["status"] == "COMPLETED", 60, "the other task", every=0.5)
        time.sleep(3)  # the continuation message has been delivered meanwhile: it must change nothing
        final = state(client, long_id)
    assert final["status"] == "CANCELLED" and final["segments"] == 1 and final["attempts"] == 1
    assert final["version"] == cancelled["version"]


def test_a_worker_killed_mid_segment_resumes_from_the_checkpoint_on_the_next_attempt(stack):
    seconds = 30
    with stack.client() as client:
        task_id = submit(client, seconds)
        events: list[dict[str, Any]] = []

        def follow() -> None:
            with stack.client() as streaming:
                events.extend(sse_events(streaming, f"/api/tasks/{task_id}/stream", timeout=240))

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        before = wait_for(
            client,
            task_id,
            lambda s: s["segments"] == 2 and not s["between_segments"] and s["progress"]["percent"] >= 60,
            90,
            "segment 2 under way",
        )
        workers = function_processes(stack.proc.pid, WORKER)
        assert workers, "no worker environment to kill"
        kill(workers, signal.SIGKILL)
        assert not wait_gone(workers, 10)
        killed_at = state(client, task_id)
        follower.join(240)
        final = state(client, task_id)
    assert final["status"] == "COMPLETED", final
    assert final["result"]["slept_seconds"] == seconds
    assert final["attempts"] == 2, "the crash cost one attempt"
    assert final["segments"] >= 3
    # the second attempt went on from the checkpoint: its progress started where the first
    # attempt's left off (never back to zero), and it did not sleep the whole 30 s again
    second = [e["data"] for e in events if e["data"]["attempts"] == 2 and e["data"]["status"] == "RUNNING"]
    assert second, "the stream shows the second attempt"
    resumed = [d["progress"]["percent"] for d in second]
    assert min(resumed) >= before["progress"]["percent"] - 100 / seconds, (before, resumed)
    progress = [e["data"]["progress"]["percent"] for e in events]
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    assert killed_at["status"] == "RUNNING"
