"""Long jobs: checkpoints, segments (continuation across worker invocations), max runtime.

Each delivery here is one worker invocation of ``invocation`` seconds (the stop margin is
zero, so a segment lasts about that long); the fake queue records the continuation
messages, and ``next_segment`` delivers the last one as SQS would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel
from taskrunner.domain.errors import InvalidParametersError
from taskrunner.domain.models import Expect, TaskStatus
from taskrunner.domain.ports import TaskContext
from taskrunner.domain.service import Continuation, Policy, SubmitRequest
from taskrunner.tasks.registry import build_registry

from tests.support.fakes import make_fakes

INVOCATION = 1.5
POLICY = Policy(progress_min_interval_seconds=0, stop_margin_seconds=0, pending_grace_seconds=30)


def submit(f: Any, name: str, parameters: dict[str, Any], **kw: Any) -> Any:
    return f.services.tasks.submit("default", SubmitRequest(name=name, parameters=parameters, **kw)).task


def first_segment(f: Any, task: Any) -> Any:
    return f.services.worker.run(
        task.ref, remaining_seconds=INVOCATION, timeout_hint=task.timeout_seconds, invocation_seconds=INVOCATION
    )


def next_segment(f: Any) -> Any:
    """Deliver the last continuation message, as a fresh invocation receives it."""
    task_id, attempt, segment = f.queue.continuations[-1]
    task = f.repo.tasks[task_id]
    continuation = Continuation(attempt, segment, task.handed_over_at)
    return f.services.worker.run(
        task.ref,
        remaining_seconds=INVOCATION,
        timeout_hint=task.timeout_seconds,
        continuation=continuation,
        invocation_seconds=INVOCATION,
    )


def run_to_the_end(f: Any, task: Any, limit: int = 20) -> Any:
    first_segment(f, task)
    for _ in range(limit):
        current = f.repo.tasks[task.task_id]
        if current.is_terminal:
            return current
        assert current.handed_over_at is not None, "not terminal, so it must wait for its next segment"
        next_segment(f)
    raise AssertionError("the task did not end")


def recording_progress(f: Any) -> list[float]:
    """Every progress percent the store receives, in order."""
    seen: list[float] = []
    update = f.repo.update

    def spy(ref: Any, changes: Any, expect: Any, **kw: Any) -> Any:
        if "progress" in changes:
            seen.append(changes["progress"].percent)
        return update(ref, changes, expect, **kw)

    f.repo.update = spy
    return seen


def test_a_sleep_longer_than_an_invocation_completes_over_several_segments_in_one_attempt():
    f = make_fakes(policy=POLICY)
    progress = recording_progress(f)
    task = submit(f, "sleep", {"seconds": 2.4})
    final = run_to_the_end(f, task)
    assert final.status is TaskStatus.COMPLETED
    assert final.result == {"slept_seconds": 2.4, "message": "Task completed after 2.4 seconds"}
    assert final.attempts == 1
    assert final.segments >= 3
    assert len(f.queue.continuations) == final.segments - 1
    assert progress == sorted(progress), "progress went backwards across segments"
    assert progress[-1] == 100.0
    # ended: nothing of the hand-overs is left on it
    assert final.checkpoint is None and final.handed_over_at is None and final.due_at is None


def test_range_sum_is_exact_after_any_number_of_segments():
    f = make_fakes(policy=POLICY)
    n = 150_000_000  # a few seconds of adding up: several 1.5 s segments
    task = submit(f, "range_sum", {"n": n, "chunks": 1000})
    final = run_to_the_end(f, task, limit=200)
    assert final.status is TaskStatus.COMPLETED, final.error
    assert final.result == {"n": n, "result": n * (n - 1) // 2}
    assert final.segments >= 2 and final.attempts == 1


class Steps(BaseModel):
    seconds: float


def _no_checkpoint(params: Steps, ctx: TaskContext) -> str:
    ctx.sleep(params.seconds)
    return "done"


def test_a_task_that_never_checkpoints_fails_at_the_end_of_its_invocation_with_a_clear_timeout():
    registry = build_registry()
    registry.register("plain", _no_checkpoint, Steps, description="no checkpoints", timeout_seconds=60)
    f = make_fakes(policy=POLICY, registry=registry)
    task = submit(f, "plain", {"seconds": 3}, max_attempts=1)
    first_segment(f, task)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.FAILED
    assert final.error.type == "TaskTimeoutError"
    assert "end of its worker invocation" in final.error.message and "checkpoint" in final.error.message
    assert final.segments == 1 and not f.queue.continuations


def test_cancel_between_segments_ends_the_task_at_once_and_the_next_segment_never_runs():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 5}, callback_url="https://example.com/hook")
    first_segment(f, task)
    waiting = f.repo.tasks[task.task_id]
    assert waiting.status is TaskStatus.RUNNING and waiting.handed_over_at is not None
    assert waiting.to_public()["between_segments"] is True
    cancelled = f.services.tasks.cancel("default", task.task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert f.queue.callbacks == [task.task_id]
    outcome = next_segment(f)
    assert outcome.done
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.CANCELLED and final.segments == 1


def test_a_cancel_during_a_segment_is_honoured_at_the_hand_over():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 5})
    # requested while the segment runs (RUNNING, not between segments): seen at the next write
    original = f.repo.update

    def cancel_once_running(ref: Any, changes: Any, expect: Any, **kw: Any) -> Any:
        stored = original(ref, changes, expect, **kw)
        if stored.status is TaskStatus.RUNNING and not stored.cancel_requested and stored.handed_over_at is None:
            f.repo.update = original
            return f.services.tasks.cancel("default", task.task_id)
        return stored

    f.repo.update = cancel_once_running
    first_segment(f, task)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.CANCELLED
    assert not f.queue.continuations


def test_a_second_delivery_of_a_continuation_is_dropped():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 5})
    first_segment(f, task)
    stale = f.queue.continuations[-1]
    next_segment(f)  # segment 2 runs and hands over in its turn
    after_two = f.repo.tasks[task.task_id]
    assert after_two.segments == 2
    f.queue.continuations.append(stale)  # SQS delivers the first hand-over's message again
    outcome = next_segment(f)
    assert outcome.done
    again = f.repo.tasks[task.task_id]
    assert again.segments == 2 and again.version == after_two.version


def test_the_reconciler_sends_a_lost_continuation_again_without_spending_an_attempt():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 1.5})
    first_segment(f, task)
    f.queue.continuations.clear()  # the continuation message is lost
    f.clock.advance(POLICY.pending_grace_seconds + 1)
    assert f.services.reconciler.run_once() == [task.task_id]
    assert [c[0] for c in f.queue.continuations] == [task.task_id]
    final = run_to_the_end_from_continuation(f, task)
    assert final.status is TaskStatus.COMPLETED and final.attempts == 1


def run_to_the_end_from_continuation(f: Any, task: Any) -> Any:
    for _ in range(20):
        next_segment(f)
        current = f.repo.tasks[task.task_id]
        if current.is_terminal:
            return current
    raise AssertionError("the task did not end")


def test_a_crash_mid_segment_resumes_from_the_last_checkpoint_on_the_next_attempt():
    from taskrunner.tasks import range_sum

    f = make_fakes(policy=POLICY)
    n = 3_000_000
    task = submit(f, "range_sum", {"n": n})
    # the first attempt saved a checkpoint, then its worker died: RUNNING, lease run out
    claimed = f.repo.update(
        task.ref,
        {"status": TaskStatus.RUNNING, "started_at": task.created_at, "lease_expires_at": task.created_at},
        Expect(frozenset({TaskStatus.PENDING})),
        increment_attempts=True,
        increment_segments=True,
    )
    # the checkpoint is marked (its total is off by 7), so the result shows it was used
    resume_at = n - range_sum.SLICE
    f.repo.tasks[task.task_id] = dataclasses.replace(
        claimed, checkpoint={"next": resume_at, "total": sum(range(resume_at)) + 7}, due_at=task.created_at
    )
    f.clock.advance(1)
    assert f.services.reconciler.run_once() == [task.task_id]
    assert not f.queue.continuations, "a crashed segment is a new attempt, not a continuation"
    f.services.worker.run(task.ref, remaining_seconds=60, timeout_hint=60)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.COMPLETED
    assert final.attempts == 2 and final.segments == 2
    assert final.result["result"] == n * (n - 1) // 2 + 7


def test_max_runtime_is_enforced_across_segments():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 100}, max_runtime_seconds=100)
    first_segment(f, task)  # 1.5 s of the fake clock's time
    assert f.repo.tasks[task.task_id].handed_over_at is not None
    f.clock.advance(98)  # the task has run (wall clock) for almost all of its 100 s
    next_segment(f)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.FAILED
    assert final.error.type == "MaxRuntimeExceededError"
    assert "100" in final.error.message
    assert final.attempts == 1, "running out of runtime is not retried"


def test_max_runtime_already_spent_fails_at_the_claim():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 100}, max_runtime_seconds=100)
    first_segment(f, task)
    f.clock.advance(200)
    next_segment(f)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.FAILED and final.error.type == "MaxRuntimeExceededError"


def test_max_runtime_is_checked_at_submit():
    f = make_fakes(policy=Policy(max_runtime_limit_seconds=3600, default_max_runtime_seconds=600))
    with pytest.raises(InvalidParametersError) as over:
        submit(f, "range_sum", {"n": 10}, max_runtime_seconds=3601)
    assert over.value.errors[0]["loc"] == ["body", "max_runtime_seconds"]
    assert "3600" in over.value.errors[0]["msg"]
    with pytest.raises(InvalidParametersError) as short:
        submit(f, "sleep", {"seconds": 700})  # the default (600 s) cannot hold it
    assert short.value.errors[0]["loc"] == ["body", "max_runtime_seconds"]
    assert "700" in short.value.errors[0]["msg"] and "600" in short.value.errors[0]["msg"]
    assert not f.repo.tasks and not f.queue.sent, "a refused submission stores nothing"
    assert submit(f, "sleep", {"seconds": 700}, max_runtime_seconds=800).max_runtime_seconds == 800
    assert submit(f, "sum", {"numbers": [1]}).max_runtime_seconds == 600


def _bad_checkpoint(params: Steps, ctx: TaskContext) -> str:
    ctx.checkpoint({"blob": "x" * int(params.seconds)} if params.seconds else {"nan": float("nan")})
    return "unreachable"


@pytest.mark.parametrize(("size", "why"), [(40_000, "limit is 32768 bytes"), (0, "not valid, bounded JSON")])
def test_a_checkpoint_that_cannot_be_stored_fails_the_task_with_the_reason(size, why):
    registry = build_registry()
    registry.register("bad", _bad_checkpoint, Steps, description="bad checkpoints")
    f = make_fakes(policy=POLICY, registry=registry)
    task = submit(f, "bad", {"seconds": size})
    f.services.worker.run(task.ref, remaining_seconds=60, timeout_hint=60)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.FAILED and final.attempts == 1
    assert final.error.type == "CheckpointError" and why in final.error.message


def _checkpoint_then_hang(params: Steps, ctx: TaskContext) -> str:
    ctx.checkpoint({"at": "start"})
    import time

    end = time.monotonic() + params.seconds
    while time.monotonic() < end:  # never checks: the worker must stop waiting by itself
        time.sleep(0.05)
    return "late"


def test_a_task_that_ignores_its_context_is_still_handed_over_from_its_last_checkpoint():
    registry = build_registry()
    registry.register("hang", _checkpoint_then_hang, Steps, description="hangs", timeout_seconds=60)
    f = make_fakes(policy=POLICY, registry=registry)
    task = submit(f, "hang", {"seconds": 3})
    first_segment(f, task)
    waiting = f.repo.tasks[task.task_id]
    assert waiting.handed_over_at is not None and waiting.checkpoint == {"at": "start"}
    assert waiting.status is TaskStatus.RUNNING and waiting.attempts == 1


def test_a_stale_segment_can_write_nothing_after_its_hand_over():
    f = make_fakes(policy=POLICY)
    task = submit(f, "sleep", {"seconds": 5})
    first_segment(f, task)
    waiting = f.repo.tasks[task.task_id]
    stale = Expect(frozenset({TaskStatus.RUNNING}), attempts=1, segments=1, handed_over=False)
    assert not stale.holds_for(waiting)
    next_segment(f)
    assert not stale.holds_for(f.repo.tasks[task.task_id])  # segment 2 runs now


def test_task_types_say_which_checkpoint():
    registry = build_registry()
    assert registry.get("sleep").checkpoints and registry.get("range_sum").checkpoints
    assert not registry.get("sum").checkpoints
    assert registry.get("sleep").runtime_needed({"seconds": 7200}) == 7200
    assert registry.get("sleep").validate({"input": 3}) == {"seconds": 3}


def test_a_continuation_message_carries_what_it_continues():

    from taskrunner.adapters.sqs_queue import task_message
    from taskrunner.entrypoints.worker import parse_task_message

    from tests.unit.factories import a_task

    task = dataclasses.replace(a_task(), attempts=2, segments=5, handed_over_at="2026-11-19T09:05:00.000Z")
    ref, timeout, continuation = parse_task_message(task_message(task, continuation=True))
    assert ref == task.ref and timeout == 60.0
    assert continuation == Continuation(2, 5, "2026-11-19T09:05:00.000Z")
    assert parse_task_message(task_message(task))[2] is None  # a first delivery continues nothing
    assert parse_task_message('{"task_id":"t","owner":"o","created_at":"c","continue":{"attempt":"x"}}') is None


def _checkpoint_often(params: Steps, ctx: TaskContext) -> str:
    for step in range(round(params.seconds / 0.1)):  # the run's time is its sleeps (virtual)
        ctx.sleep(0.1)
        ctx.checkpoint({"t": step})
        ctx.progress(50)
    return "done"


def test_the_lease_of_a_task_that_checkpoints_covers_its_whole_segment():
    """Its timeout restarts at each checkpoint, so it may run past the lease its claim took
    (its timeout): the lease keeps ahead, or the reconciler would take the running task for a
    crashed one; it moves about once per timeout, not with every write."""
    from datetime import timedelta

    from taskrunner.domain.models import parse_iso

    registry = build_registry()
    registry.register("often", _checkpoint_often, Steps, description="checkpoints", timeout_seconds=1)
    f = make_fakes(policy=POLICY, registry=registry)
    leases: list[str] = []
    update = f.repo.update

    def spy(ref: Any, changes: Any, expect: Any, **kw: Any) -> Any:
        if changes.get("lease_expires_at"):
            leases.append(changes["lease_expires_at"])
        return update(ref, changes, expect, **kw)

    f.repo.update = spy
    task = submit(f, "often", {"seconds": 2.5})
    started = f.clock.now()
    f.services.worker.run(task.ref, remaining_seconds=4.0, timeout_hint=1, invocation_seconds=4.0)
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.COMPLETED and final.attempts == 1
    claim_lease, *later = (parse_iso(x) for x in leases)
    assert claim_lease <= started + timedelta(seconds=1 + POLICY.lease_grace_seconds)
    assert later and max(later) >= started + timedelta(seconds=2.5), "the lease must cover the whole run"
    assert max(later) <= started + timedelta(seconds=4 + POLICY.lease_grace_seconds), "never past the segment"
    assert len(later) <= 4, f"moved about once per timeout, not at every write: {len(later)}"
