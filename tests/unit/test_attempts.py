"""Attempt history (one entry per attempt, every outcome, bounded and scrubbed) and retry of
a FAILED or CANCELLED task as a new task."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter
from taskrunner.domain.attempts import ENTRY_MAX_BYTES, LINE_MAX_CHARS, TRACEBACK_FRAMES, Attempt, AttemptOutcome
from taskrunner.domain.errors import (
    EgressDeniedError,
    IdempotencyConflictError,
    InvalidTransitionError,
    TaskNotFoundError,
)
from taskrunner.domain.models import Expect, TaskStatus
from taskrunner.domain.ports import TaskContext
from taskrunner.domain.service import Policy, SubmitRequest, TaskService
from taskrunner.domain.views import TaskPublic
from taskrunner.entrypoints.api import create_app
from taskrunner.tasks.registry import build_registry

from tests.support.fakes import make_fakes
from tests.unit.factories import a_task

KEY = "tr_k1a2b3c4_S3cr3tS3cr3tS3cr3tS3cr3tS3cr3t"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LXZhbHVl"


def submit(f: Any, name: str = "sum", parameters: dict[str, Any] | None = None, **kw: Any) -> Any:
    request = SubmitRequest(name=name, parameters={"numbers": [1, 2]} if parameters is None else parameters, **kw)
    return f.services.tasks.submit("default", request).task


def deliver(f: Any, task: Any) -> Any:
    return f.services.worker.run(task.ref, remaining_seconds=900.0, timeout_hint=task.timeout_seconds)


def history(f: Any, task: Any) -> list[dict[str, Any]]:
    return f.repo.tasks[task.task_id].to_public()["attempt_history"]


class Deep(BaseModel):
    depth: int = 20
    message: str = "deep failure"


def deep_registry(crash: dict[str, Any] | None = None) -> Any:
    """``deep``: fails 20 calls down, naming secrets; ``crashy``: its worker dies on attempt 1."""
    registry = build_registry()

    def dive(n: int, message: str) -> None:
        secret_in_source = f"{KEY} {WEBHOOK_SECRET}"  # noqa: F841  (a local: must never show)
        if n == 0:
            raise RuntimeError(message)
        dive(n - 1, message)

    def deep(params: Deep, ctx: TaskContext) -> None:
        dive(params.depth, params.message)

    def crashy(params: Deep, ctx: TaskContext) -> dict[str, int]:
        if ctx.attempt == 1 and crash is not None:
            # the outcome write of this attempt never happens: the worker is gone
            crash["repo"].fail_next = SystemExit("worker killed")
        return {"attempt": ctx.attempt}

    registry.register("deep", deep, Deep, description="fails deep down")
    registry.register("crashy", crashy, Deep, description="its first worker dies")
    return registry


# -- history: every outcome ---------------------------------------------------------------


def test_completed_attempt_is_recorded_with_times_and_duration():
    f = make_fakes()
    task = submit(f)
    f.clock.advance(3)
    deliver(f, task)
    [entry] = history(f, task)
    assert entry["attempt"] == 1 and entry["outcome"] == "COMPLETED" and entry["error"] is None
    assert entry["started_at"] == "2026-11-19T09:00:03.000Z" and entry["ended_at"] == entry["started_at"]
    assert entry["duration_ms"] == 0 and entry["segments"] == 1


def test_retryable_failure_then_success_records_both_attempts():
    f = make_fakes()
    task = submit(f, name="fail", parameters={"message": "flaky", "succeed_on_attempt": 2})
    deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.RETRYING
    [first] = history(f, task)
    assert first["outcome"] == "RETRYING" and first["error"]["type"] == "IntentionalFailure"
    assert first["error"]["message"] == "flaky"
    assert any("fail.py" in line and "in run" in line for line in first["error"]["traceback"])
    f.clock.advance(5)
    deliver(f, task)
    entries = history(f, task)
    assert [(e["attempt"], e["outcome"]) for e in entries] == [(1, "RETRYING"), (2, "COMPLETED")]
    assert entries[1]["started_at"] == "2026-11-19T09:00:05.000Z" and entries[1]["error"] is None


def test_final_failure_is_failed_with_traceback():
    f = make_fakes()
    task = submit(f, name="fail", parameters={"message": "boom: bad input", "retryable": False})
    deliver(f, task)
    [entry] = history(f, task)
    assert entry["outcome"] == "FAILED" and entry["error"]["type"] == "NonRetryableError"
    assert entry["error"]["message"] == "boom: bad input" and entry["error"]["traceback"]


def test_timeout_is_recorded_as_timed_out():
    f = make_fakes(policy=Policy(progress_min_interval_seconds=0))
    task = submit(f, name="sleep", parameters={"seconds": 5}, timeout_seconds=1, max_attempts=2)
    deliver(f, task)
    [entry] = history(f, task)
    assert f.repo.tasks[task.task_id].status is TaskStatus.RETRYING
    assert entry["outcome"] == "TIMED_OUT" and entry["error"]["type"] == "TaskTimeoutError"


def test_an_attempt_started_past_max_runtime_is_timed_out():
    f = make_fakes()
    f.repo.create(
        a_task(status=TaskStatus.RETRYING, attempts=1, started_at="2026-11-19T08:00:00.000Z", max_runtime_seconds=60)
    )
    deliver(f, f.repo.tasks["t-1"])
    assert f.repo.tasks["t-1"].status is TaskStatus.FAILED
    [entry] = history(f, f.repo.tasks["t-1"])  # attempt 1 predates the history: not invented
    assert (entry["attempt"], entry["outcome"]) == (2, "TIMED_OUT")
    assert entry["error"]["type"] == "MaxRuntimeExceededError"


def test_cancelled_attempt_is_recorded():
    f = make_fakes()
    task = submit(f, name="sleep", parameters={"seconds": 1})
    f.repo.update(task.ref, {"cancel_requested": True}, Expect(frozenset({TaskStatus.PENDING})))
    deliver(f, task)
    [entry] = history(f, task)
    assert entry["outcome"] == "CANCELLED" and entry["error"] is None


def test_crashed_worker_is_recorded_as_lost_when_the_next_attempt_ends():
    crash: dict[str, Any] = {}
    f = make_fakes(registry=deep_registry(crash))
    crash["repo"] = f.repo
    task = submit(f, name="crashy", parameters={})
    with pytest.raises(SystemExit):
        deliver(f, task)
    assert f.repo.tasks[task.task_id].status is TaskStatus.RUNNING and not history(f, task)
    f.clock.advance(task.timeout_seconds + 120)  # the lease runs out; the message comes back
    deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.COMPLETED and stored.result == {"attempt": 2}
    lost, done = history(f, task)
    assert lost["attempt"] == 1 and lost["outcome"] == "LOST" and lost["error"]["type"] == "WorkerLost"
    assert lost["started_at"] == "2026-11-19T09:00:00.000Z" and lost["ended_at"] == done["started_at"]
    assert lost["duration_ms"] == (task.timeout_seconds + 120) * 1000
    assert (done["attempt"], done["outcome"]) == (2, "COMPLETED")


def test_dead_letter_of_a_running_task_ends_its_attempt():
    f = make_fakes()
    task = submit(f)
    f.repo.update(
        task.ref,
        {"status": TaskStatus.RUNNING, "attempt_started_at": task.created_at},
        Expect(frozenset({TaskStatus.PENDING})),
        increment_attempts=True,
    )
    f.services.worker.fail_from_dead_letter(task.task_id, "received 5 times")
    [entry] = history(f, task)
    assert entry["outcome"] == "FAILED" and entry["error"]["type"] == "DeadLetterError"


def test_history_keeps_the_last_n_attempts():
    f = make_fakes(policy=Policy(progress_min_interval_seconds=0, max_attempts_limit=3))
    task = submit(f, name="fail", parameters={"message": "again"}, max_attempts=3)
    stored = f.repo.tasks[task.task_id]
    earlier = tuple(
        Attempt.ended(n, AttemptOutcome.RETRYING, started_at=None, ended_at=None, duration_ms=None, segments=n)
        for n in range(1, 4)
    )
    # three attempts already made (set up directly: PENDING -> RETRYING is no transition of the model)
    f.repo.tasks[task.task_id] = dataclasses.replace(
        stored, attempt_history=earlier, attempts=3, status=TaskStatus.RETRYING
    )
    deliver(f, task)  # attempt 4 > max_attempts: ends FAILED (AttemptsExhausted)
    assert [e["attempt"] for e in history(f, task)] == [2, 3, 4]


# -- bounds and secrets -------------------------------------------------------------------


def test_traceback_is_the_last_frames_bounded_and_without_secrets():
    f = make_fakes(registry=deep_registry())
    message = f"could not call the API with {KEY} (signing with {WEBHOOK_SECRET}) " + "x" * 5000
    task = submit(f, name="deep", parameters={"message": message})
    deliver(f, task)
    [entry] = history(f, task)
    text = json.dumps(entry)
    assert len(text.encode()) <= ENTRY_MAX_BYTES
    lines = entry["error"]["traceback"]
    assert 1 <= len(lines) <= TRACEBACK_FRAMES and all(len(line) <= LINE_MAX_CHARS for line in lines)
    assert "in dive" in lines[-1] and "raise RuntimeError(message)" in lines[-1]  # the newest frame last
    assert "tr_k1a2b3c4" not in text and "S3cr3t" not in text and "whsec_c2Vj" not in text
    assert "tr_[redacted]" in entry["error"]["message"] and "whsec_[redacted]" in entry["error"]["message"]
    assert "secret_in_source" not in text  # source lines of other frames are not included; locals never


def test_scrubbing_leaves_ordinary_words_alone():
    entry = Attempt.ended(
        1,
        AttemptOutcome.FAILED,
        started_at=None,
        ended_at=None,
        duration_ms=None,
        segments=1,
        error_type="KeyError",
        message="attr_name and str_value; key tr_abcdefgh_secret",
    )
    assert entry.message == "attr_name and str_value; key tr_[redacted]"


def test_public_shape_matches_the_schema():
    f = make_fakes()
    task = submit(f, name="fail", parameters={"retryable": False})
    deliver(f, task)
    public = f.repo.tasks[task.task_id].to_public()
    assert set(public) == {field.name for field in dataclasses.fields(TaskPublic)} - {"links"}
    TypeAdapter(TaskPublic).validate_python(public)


# -- retry ----------------------------------------------------------------------------------


def failed_task(f: Any, **kw: Any) -> Any:
    task = submit(f, name="fail", parameters={"message": "no", "retryable": False}, **kw)
    deliver(f, task)
    assert f.repo.tasks[task.task_id].status is TaskStatus.FAILED
    return f.repo.tasks[task.task_id]


def test_retry_of_a_failed_task_copies_everything_and_links_the_old():
    f = make_fakes()
    old = failed_task(
        f,
        callback_url="https://example.com/hook",
        metadata={"order": 7},
        priority=True,
        max_attempts=5,
        timeout_seconds=30,
        max_runtime_seconds=600,
        delay_seconds=10,
    )
    result = f.services.tasks.retry("default", old.task_id)
    new = result.task
    assert result.created and new.task_id != old.task_id and new.retry_of == old.task_id
    assert new.status is TaskStatus.PENDING and new.attempts == 0 and new.attempt_history == ()
    assert (new.name, new.parameters, new.metadata) == (old.name, old.parameters, old.metadata)
    assert new.callback.url == "https://example.com/hook" and new.priority
    assert (new.max_attempts, new.timeout_seconds, new.max_runtime_seconds) == (5, 30, 600)
    assert new.delay_seconds == 0  # a retry runs now
    assert f.queue.sent[-1][0] == "priority" and f.queue.sent[-1][1].task_id == new.task_id
    assert f.repo.tasks[new.task_id].to_public()["retry_of"] == old.task_id
    assert f.repo.tasks[old.task_id].status is TaskStatus.FAILED  # the old one is left as it was


def test_retry_of_a_cancelled_task():
    f = make_fakes()
    task = submit(f)
    f.services.tasks.cancel("default", task.task_id)
    assert f.services.tasks.retry("default", task.task_id).task.retry_of == task.task_id


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.COMPLETED])
def test_retry_is_refused_for_other_statuses_and_changes_nothing(status):
    f = make_fakes()
    f.repo.create(a_task(status=status))
    before = dict(f.repo.tasks)
    with pytest.raises(InvalidTransitionError) as exc:
        f.services.tasks.retry("default", "t-1")
    assert status.value in str(exc.value) and "retry" in str(exc.value)
    assert f.repo.tasks == before and not f.queue.sent


def test_retry_of_unknown_or_another_owners_task_is_not_found():
    f = make_fakes()
    f.repo.create(a_task(status=TaskStatus.FAILED, owner="someone-else"))
    for task_id in ("t-1", "nope"):
        with pytest.raises(TaskNotFoundError):
            f.services.tasks.retry("default", task_id)
    assert len(f.repo.tasks) == 1


def test_retry_is_idempotent_with_a_key():
    f = make_fakes()
    old = failed_task(f)
    first = f.services.tasks.retry("default", old.task_id, idempotency_key="r-1")
    again = f.services.tasks.retry("default", old.task_id, idempotency_key="r-1")
    assert first.created and not again.created and again.task.task_id == first.task.task_id
    other = failed_task(f)
    with pytest.raises(IdempotencyConflictError):
        f.services.tasks.retry("default", other.task_id, idempotency_key="r-1")


def test_retry_checks_the_callback_url_again():
    f = make_fakes()
    old = failed_task(f, callback_url="https://example.com/hook")

    def refuse(url: str) -> None:
        raise EgressDeniedError(f"{url} is not allowed")

    svc = TaskService(f.repo, f.queue, f.services.tasks.catalog, clock=f.clock, url_check=refuse)
    count = len(f.repo.tasks)
    with pytest.raises(EgressDeniedError):
        svc.retry("default", old.task_id)
    assert len(f.repo.tasks) == count


# -- the API ------------------------------------------------------------------------------


def test_api_retry_answers_202_like_submit_and_state_shows_history():
    f = make_fakes()
    client = TestClient(create_app(lambda: f.services))
    old = failed_task(f)
    state = client.get(f"/api/tasks/{old.task_id}/state").json()
    assert state["attempt_history"][0]["outcome"] == "FAILED" and state["retry_of"] is None
    answer = client.post(f"/api/tasks/{old.task_id}/retry", headers={"Idempotency-Key": "k"})
    body = answer.json()
    assert answer.status_code == 202 and answer.headers["location"] == f"/api/tasks/{body['task_id']}/state"
    assert set(body) == {"task_id", "status", "name", "created_at", "links", "message"}
    assert body["status"] == "PENDING" and body["name"] == "fail"
    replay = client.post(f"/api/tasks/{old.task_id}/retry", headers={"Idempotency-Key": "k"})
    assert replay.status_code == 202 and replay.json()["task_id"] == body["task_id"]
    assert replay.headers["idempotent-replayed"] == "true"
    new = client.get(f"/api/tasks/{body['task_id']}/state").json()
    assert new["retry_of"] == old.task_id and new["attempt_history"] == []


def test_api_retry_refuses_with_409_and_404():
    f = make_fakes()
    client = TestClient(create_app(lambda: f.services))
    task = submit(f)
    conflict = client.post(f"/api/tasks/{task.task_id}/retry")
    assert conflict.status_code == 409 and "PENDING" in conflict.json()["detail"]
    assert client.post("/api/tasks/unknown/retry").status_code == 404
    assert len(f.repo.tasks) == 1
