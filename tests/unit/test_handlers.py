"""Every function's handler fed the real sample events in events/."""

import dataclasses
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mangum import Mangum
from taskrunner.domain.models import ACTIVE_STATUSES, Expect, TaskStatus
from taskrunner.entrypoints import dead_letter, notifier, reconciler, worker
from taskrunner.entrypoints.api import create_app
from taskrunner.entrypoints.stream import create_stream_app

from tests.support.fakes import make_fakes
from tests.support.lambda_context import LambdaContext
from tests.unit.factories import a_task

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event(name):
    return json.loads((EVENTS / name).read_text())


def seeded(**overrides):
    f = make_fakes()
    for record in event("sqs_task_batch.json")["Records"][:2]:
        body = json.loads(record["body"])
        f.repo.create(a_task(task_id=body["task_id"], created_at=body["created_at"], **overrides))
    return f


def test_api_handler_post_event_accepts_task():
    f = make_fakes()
    handler = Mangum(create_app(lambda: f.services), lifespan="off")
    response = handler(event("api_post_task.json"), LambdaContext())
    body = json.loads(response["body"])
    assert response["statusCode"] == 202 and body["status"] == "PENDING"
    stored = f.repo.tasks[body["task_id"]]
    assert stored.name == "sum" and stored.callback.url == "https://example.com/hook"
    assert [t.task_id for _, t, _ in f.queue.sent] == [body["task_id"]]


def test_api_handler_state_and_list_events():
    f = seeded()
    handler = Mangum(create_app(lambda: f.services), lifespan="off")
    state = handler(event("api_get_state.json"), LambdaContext())
    assert state["statusCode"] == 200 and json.loads(state["body"])["task_id"] == "3f1c2a9e-5b7d-4c1e-9f0a-2b6d8e4c7a11"
    listing = handler(event("api_list_tasks.json"), LambdaContext())
    assert listing["statusCode"] == 200 and json.loads(listing["body"])["tasks"] == []
    missing = event("api_get_state.json")
    missing["rawPath"] = missing["requestContext"]["http"]["path"] = "/api/tasks/unknown/state"
    assert handler(missing, LambdaContext())["statusCode"] == 404


def test_worker_handler_runs_batch_and_drops_malformed_record():
    f = seeded()
    result = worker.process_batch(event("sqs_task_batch.json"), LambdaContext(), f.services)
    assert result == {"batchItemFailures": []}
    assert all(t.status is TaskStatus.COMPLETED for t in f.repo.tasks.values())


def test_worker_handler_continues_a_long_task_from_its_continuation_event():
    """events/sqs_task_continuation.json: the message a segment's hand-over sends."""
    f = make_fakes()
    record = event("sqs_task_continuation.json")["Records"][0]
    body = json.loads(record["body"])
    f.repo.create(
        a_task(
            task_id=body["task_id"],
            created_at=body["created_at"],
            name="sleep",
            parameters={"seconds": 3},
            status=TaskStatus.RUNNING,
            attempts=1,
            segments=3,
            started_at=body["created_at"],
            handed_over_at=body["continue"]["handed_over_at"],
            checkpoint={"step": 2},  # two of the three seconds slept by earlier segments
        )
    )
    result = worker.process_batch(event("sqs_task_continuation.json"), LambdaContext(), f.services)
    assert result == {"batchItemFailures": []}
    done = f.repo.tasks[body["task_id"]]
    assert done.status is TaskStatus.COMPLETED and done.result["slept_seconds"] == 3
    assert (done.attempts, done.segments) == (1, 4)


def test_worker_partial_failure_leaves_neighbours_alone():
    f = seeded()
    busy = next(iter(f.repo.tasks.values()))
    f.repo.update(
        busy.ref,
        {"status": TaskStatus.RUNNING, "lease_expires_at": "2999-01-01T00:00:00.000Z"},
        Expect(frozenset(ACTIVE_STATUSES)),
    )
    result = worker.process_batch(event("sqs_task_batch.json"), LambdaContext(), f.services)
    assert result["batchItemFailures"] == [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975528770"}]
    others = [t for t in f.repo.tasks.values() if t.task_id != busy.task_id]
    assert [t.status for t in others] == [TaskStatus.COMPLETED]
    assert f.queue.visibility and f.queue.visibility[0][2] > 0  # comes back after the lease


def test_notifier_handler_delivers_and_records():
    f = seeded(status=TaskStatus.COMPLETED, result={"x": 1})
    tid = "3f1c2a9e-5b7d-4c1e-9f0a-2b6d8e4c7a11"
    from taskrunner.domain.models import CallbackState

    f.repo.tasks[tid] = dataclasses.replace(f.repo.tasks[tid], callback=CallbackState(url="https://example.com/h"))
    assert notifier.process_batch(event("sqs_callback_batch.json"), LambdaContext(), f.services) == {
        "batchItemFailures": []
    }
    assert f.repo.tasks[tid].callback.status.value == "DELIVERED"
    assert json.loads(f.http.requests[0]["body"])["result"] == {"x": 1}


def test_notifier_handler_reports_failure_for_retry():
    f = seeded(status=TaskStatus.FAILED)
    f.http.statuses = [503]
    tid = "3f1c2a9e-5b7d-4c1e-9f0a-2b6d8e4c7a11"
    from taskrunner.domain.models import CallbackState

    f.repo.tasks[tid] = dataclasses.replace(f.repo.tasks[tid], callback=CallbackState(url="https://example.com/h"))
    result = notifier.process_batch(event("sqs_callback_batch.json"), LambdaContext(), f.services)
    assert len(result["batchItemFailures"]) == 1 and f.queue.visibility


def test_dead_letter_handler_fails_task():
    f = seeded()
    assert dead_letter.process_batch(event("sqs_dead_letter_batch.json"), LambdaContext(), f.services) == {
        "batchItemFailures": []
    }
    task = f.repo.tasks["3f1c2a9e-5b7d-4c1e-9f0a-2b6d8e4c7a11"]
    assert task.status is TaskStatus.FAILED and "15 times" in task.error.message


def test_reconciler_handler_with_schedule_event():
    f = seeded(due_at="2026-11-19T08:59:00.000Z")
    assert reconciler.run(event("schedule_reconciler.json"), f.services) == {"redriven": 2}


@pytest.mark.parametrize("accept", ["text/event-stream"])
def test_stream_app_serves_function_url_request(accept):
    f = seeded(status=TaskStatus.COMPLETED, version=3)
    req = event("function_url_stream.json")
    client = TestClient(create_stream_app(lambda: f.services))
    response = client.get(req["rawPath"], headers={"accept": accept})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block.startswith("id:")]
    assert len(events) == 1 and '"status": "COMPLETED"' in events[0] and events[0].startswith("id: 3")
    resumed = client.get(req["rawPath"], headers={"accept": accept, "last-event-id": "3"})
    assert "data:" not in resumed.text  # nothing new since event 3, and the task is over
    assert client.get("/api/tasks/unknown").status_code == 404
