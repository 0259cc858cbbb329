import dataclasses

import pytest
from taskrunner.adapters.dynamodb_tasks import DynamoDbTaskRepository
from taskrunner.domain.errors import ConditionFailedError, InvalidCursorError, TaskAlreadyExistsError, TaskNotFoundError
from taskrunner.domain.models import ACTIVE_STATUSES, CallbackState, Expect, Progress, TaskError, TaskRef, TaskStatus

from tests.unit.factories import a_task

CLAIM = Expect(frozenset({TaskStatus.PENDING, TaskStatus.RETRYING}), lease_expired_before="2026-11-19T10:00:00.000Z")


@pytest.fixture
def repo(aws):
    return DynamoDbTaskRepository(aws.session.client("dynamodb"), aws.ref("TasksTable"))


def make(i, **kw):
    return a_task(task_id=f"t-{i:03d}", created_at=f"2026-11-19T09:00:{i:02d}.000Z", **kw)


def test_round_trip_of_every_field(repo):
    task = make(
        1,
        metadata={"k": "v"},
        callback=CallbackState(url="https://example.com/h"),
        error=TaskError("E", "m"),
        progress=Progress(12.5, "x"),
        priority=True,
        due_at="2026-11-19T09:02:00.000Z",
    )
    repo.create(task)
    assert repo.get("t-001") == task
    assert repo.get("missing") is None


def test_claim_increments_attempts_and_returns_item(repo):
    repo.create(make(1))
    claimed = repo.update(
        TaskRef("t-001", "default", "2026-11-19T09:00:01.000Z"),
        {
            "status": TaskStatus.RUNNING,
            "started_at": "2026-11-19T09:01:00.000Z",
            "lease_expires_at": "2026-11-19T09:02:00.000Z",
        },
        CLAIM,
        increment_attempts=True,
    )
    assert claimed.status is TaskStatus.RUNNING and claimed.attempts == 1 and claimed.version == 2
    with pytest.raises(ConditionFailedError) as exc:
        repo.update(
            claimed.ref,
            {"status": TaskStatus.RUNNING},
            Expect(frozenset({TaskStatus.PENDING})),
            increment_attempts=True,
        )
    assert exc.value.current.status is TaskStatus.RUNNING  # the stored item comes back with the failure
    again = repo.update(
        claimed.ref,
        {"status": TaskStatus.RUNNING, "started_at": "2026-11-19T09:09:00.000Z"},
        CLAIM,
        increment_attempts=True,
    )
    assert (
        again.attempts == 2 and again.started_at == "2026-11-19T09:01:00.000Z"
    )  # lease expired: reclaimed, first start kept
    with pytest.raises(TaskNotFoundError):
        repo.update(TaskRef("nope", "default", "x"), {"status": TaskStatus.RUNNING}, CLAIM)


def test_terminal_write_needs_the_claims_attempt(repo):
    repo.create(make(1, status=TaskStatus.RUNNING, attempts=2))
    ref = repo.get("t-001").ref
    with pytest.raises(ConditionFailedError):
        repo.update(ref, {"status": TaskStatus.COMPLETED}, Expect(frozenset({TaskStatus.RUNNING}), attempts=1))
    done = repo.update(
        ref,
        {"status": TaskStatus.COMPLETED, "result": {"big": "x" * 1000}, "due_at": None},
        Expect(frozenset({TaskStatus.RUNNING}), attempts=2),
    )
    assert done.status is TaskStatus.COMPLETED and done.result == {"big": "x" * 1000}


def test_list_newest_first_with_filters_and_cursor(repo):
    for i in range(7):
        repo.create(make(i, name="sum" if i % 2 else "sleep"))
    repo.create(dataclasses.replace(make(50), owner="other"))
    done = repo.get("t-003")
    repo.update(done.ref, {"status": TaskStatus.COMPLETED}, Expect(frozenset(ACTIVE_STATUSES)))
    page = repo.list("default", statuses=None, name=None, limit=3, cursor=None)
    assert [t.task_id for t in page.items] == ["t-006", "t-005", "t-004"] and page.cursor
    page2 = repo.list("default", statuses=None, name=None, limit=3, cursor=page.cursor)
    assert [t.task_id for t in page2.items] == ["t-003", "t-002", "t-001"]
    page3 = repo.list("default", statuses=None, name=None, limit=3, cursor=page2.cursor)
    assert [t.task_id for t in page3.items] == ["t-000"] and page3.cursor is None
    assert [
        t.task_id for t in repo.list("default", statuses=[TaskStatus.COMPLETED], name=None, limit=10, cursor=None).items
    ] == ["t-003"]
    active = repo.list("default", statuses=sorted(ACTIVE_STATUSES), name="sum", limit=2, cursor=None)
    assert [t.task_id for t in active.items] == ["t-005", "t-001"]
    assert [t.task_id for t in repo.list("other", statuses=None, name=None, limit=10, cursor=None).items] == ["t-050"]
    with pytest.raises(InvalidCursorError):
        repo.list("default", statuses=None, name=None, limit=3, cursor="not-a-cursor")
    with pytest.raises(InvalidCursorError):  # another owner's cursor
        repo.list("other", statuses=None, name=None, limit=3, cursor=page.cursor)


def test_due_uses_the_sparse_index(repo):
    repo.create(make(1, due_at="2026-11-19T09:05:00.000Z"))
    repo.create(make(2, due_at="2026-11-19T09:15:00.000Z"))
    assert [t.task_id for t in repo.due("2026-11-19T09:10:00.000Z", 10)] == ["t-001"]
    t1 = repo.get("t-001")
    repo.update(t1.ref, {"status": TaskStatus.CANCELLED, "due_at": None}, Expect(frozenset(ACTIVE_STATUSES)))
    assert repo.due("2026-11-19T09:59:00.000Z", 10)[0].task_id == "t-002"
    assert len(repo.due("2026-11-19T09:59:00.000Z", 10)) == 1


def test_idempotency_key_is_written_atomically_with_the_task(repo):
    repo.create(make(1, idempotency_key="abc"), idempotency_hash="h1")
    assert repo.find_by_idempotency_key("default", "abc") == ("t-001", "h1")
    assert repo.find_by_idempotency_key("other", "abc") is None
    with pytest.raises(TaskAlreadyExistsError):
        repo.create(make(2, idempotency_key="abc"), idempotency_hash="h2")
    assert repo.get("t-002") is None  # the transaction wrote nothing
    assert repo.get("idem#7#default#abc") is None  # key records are not tasks


def test_retried_create_after_a_lost_answer_is_not_a_conflict(repo):
    task = make(1)
    repo.create(task)
    repo.create(task)  # the same write again (botocore's retry after a lost answer): no error
    keyed = make(2, idempotency_key="k")
    repo.create(keyed, idempotency_hash="h")
    repo.create(keyed, idempotency_hash="h")
    with pytest.raises(TaskAlreadyExistsError):
        repo.create(dataclasses.replace(make(1), name="other"))  # a different task under the same id
    with pytest.raises(TaskAlreadyExistsError):
        repo.create(make(3, idempotency_key="k"), idempotency_hash="h")  # the key belongs to t-002


@pytest.mark.parametrize("same_body", [True, False])
def test_idempotency_keys_of_two_owners_never_meet(services, same_body):
    """Owner ``dev#x`` with key ``y`` and owner ``dev`` with key ``x#y``: two tasks, and the
    second owner learns nothing of the first (no replay of its id, no 409 on another body)."""
    from taskrunner.domain.service import SubmitRequest

    first = services.tasks.submit("dev#x", SubmitRequest(name="sum", parameters={"a": 1, "b": 2}), idempotency_key="y")
    body = {"a": 1, "b": 2} if same_body else {"a": 5, "b": 6}
    second = services.tasks.submit("dev", SubmitRequest(name="sum", parameters=body), idempotency_key="x#y")
    assert first.created and second.created
    assert second.task.task_id != first.task.task_id
    assert services.tasks.get("dev", second.task.task_id).owner == "dev"
    # each owner's replay still finds its own task
    again = services.tasks.submit("dev", SubmitRequest(name="sum", parameters=body), idempotency_key="x#y")
    assert not again.created and again.task.task_id == second.task.task_id
    assert services.repository.find_by_idempotency_key("dev#x", "y")[0] == first.task.task_id


def test_a_stored_item_that_is_not_valid_json_never_breaks_a_list_page(repo, aws):
    """An item written by an older version (NaN, a lone surrogate): the page lists it with a marker."""
    client = aws.session.client("dynamodb")
    repo.create(make(1))
    repo.create(make(2))
    client.update_item(
        TableName=aws.ref("TasksTable"),
        Key={"task_id": {"S": "t-002"}},
        UpdateExpression="SET metadata = :m, #r = :r",
        ExpressionAttributeNames={"#r": "result"},
        ExpressionAttributeValues={":m": {"S": '{"x":NaN}'}, ":r": {"S": '{"k":"\\ud800"}'}},
    )
    page = repo.list("default", statuses=None, name=None, limit=10, cursor=None)
    assert [t.task_id for t in page.items] == ["t-002", "t-001"]
    bad = page.items[0]
    assert bad.metadata["unreadable"] is True and bad.result["unreadable"] is True
    assert repo.get("t-002").metadata == bad.metadata


def test_segments_hand_over_and_continuation_conditions_on_dynamodb(repo):
    """The conditional writes a long task's segments rely on, as DynamoDB evaluates them."""
    repo.create(make(1, max_runtime_seconds=7200))
    ref = TaskRef("t-001", "default", "2026-11-19T09:00:01.000Z")
    claimed = repo.update(
        ref,
        {"status": TaskStatus.RUNNING, "started_at": "2026-11-19T09:01:00.000Z", "handed_over_at": None},
        CLAIM,
        increment_attempts=True,
        increment_segments=True,
    )
    assert (claimed.attempts, claimed.segments, claimed.max_runtime_seconds) == (1, 1, 7200)
    segment = Expect(frozenset({TaskStatus.RUNNING}), attempts=1, segments=1, handed_over=False)
    state = {"next": 10**9, "total": 5 * 10**23, "note": "ünïcode"}
    waiting = repo.update(
        ref,
        {"checkpoint": state, "checkpointed_at": "2026-11-19T09:05:00.000Z", "handed_over_at": "2026-11-19T09:05:00Z"},
        segment,
        current=claimed,
    )
    assert waiting.checkpoint == state and waiting.handed_over_at is not None
    assert repo.get("t-001").checkpoint == state
    # the segment that handed over can write nothing more
    with pytest.raises(ConditionFailedError):
        repo.update(ref, {"progress": Progress(99.0)}, segment)
    # a continuation for another segment or attempt does not claim it
    for attempts, segments in ((1, 2), (2, 1)):
        with pytest.raises(ConditionFailedError):
            repo.update(
                ref,
                {"handed_over_at": None},
                Expect(frozenset({TaskStatus.RUNNING}), attempts=attempts, segments=segments, handed_over=True),
                increment_segments=True,
            )
    resumed = repo.update(
        ref,
        {"handed_over_at": None},
        Expect(frozenset({TaskStatus.RUNNING}), attempts=1, segments=1, handed_over=True),
        increment_segments=True,
    )
    assert (resumed.attempts, resumed.segments, resumed.handed_over_at) == (1, 2, None)
    assert resumed.checkpoint == state, "the next segment resumes from it"
    # a second delivery of the same continuation finds the task running again
    with pytest.raises(ConditionFailedError):
        repo.update(
            ref,
            {"handed_over_at": None},
            Expect(frozenset({TaskStatus.RUNNING}), attempts=1, segments=1, handed_over=True),
            increment_segments=True,
        )
    done = repo.update(
        ref,
        {"status": TaskStatus.COMPLETED, "checkpoint": None, "handed_over_at": None},
        Expect(frozenset({TaskStatus.RUNNING}), attempts=1, segments=2),
    )
    assert done.checkpoint is None and done.segments == 2


def test_attempt_history_round_trips_and_stays_bounded(services, repo):
    from taskrunner.domain.attempts import Attempt, AttemptOutcome
    from taskrunner.domain.service import SubmitRequest

    task = services.tasks.submit(
        "default", SubmitRequest(name="fail", parameters={"message": "tr_abcdefgh_secret-ish"}, max_attempts=10)
    ).task
    for _ in range(10):
        services.worker.run(task.ref, remaining_seconds=900.0, timeout_hint=task.timeout_seconds)
    stored = repo.get(task.task_id)
    assert stored.status is TaskStatus.FAILED and stored.attempts == 10
    outcomes = [(e.number, e.outcome) for e in stored.attempt_history]
    assert outcomes == [(n, AttemptOutcome.RETRYING) for n in range(1, 10)] + [(10, AttemptOutcome.FAILED)]
    last = stored.attempt_history[-1]
    assert last.error_type == "IntentionalFailure" and last.message == "tr_[redacted]" and last.traceback
    assert repo.get(task.task_id) == stored  # read back as written

    # one more attempt than the history keeps: the oldest entry goes, the item stays bounded
    full = tuple(
        Attempt.ended(n, AttemptOutcome.RETRYING, started_at=None, ended_at=None, duration_ms=1, segments=n)
        for n in range(1, 11)
    )
    repo.create(make(2, name="fail", status=TaskStatus.RETRYING, attempts=10, max_attempts=10, attempt_history=full))
    services.worker.run(repo.get("t-002").ref, remaining_seconds=900.0, timeout_hint=60)
    bounded = repo.get("t-002")
    assert bounded.status is TaskStatus.FAILED and bounded.error.type == "AttemptsExhausted"
    assert [e.number for e in bounded.attempt_history] == list(range(2, 12))
    assert bounded.to_public()["attempt_history"][-1]["error"]["type"] == "AttemptsExhausted"


def test_a_reclaiming_claim_keeps_the_lost_attempts_start(repo):
    from taskrunner.domain.attempts import AttemptOutcome
    from taskrunner.domain.service import attempt_entry, attempt_history

    repo.create(make(1, retry_of="t-000"))
    ref = repo.get("t-001").ref
    first = repo.update(
        ref,
        {
            "status": TaskStatus.RUNNING,
            "attempt_started_at": "2026-11-19T09:01:00.000Z",
            "lease_expires_at": "2026-11-19T09:02:00.000Z",
        },
        CLAIM,
        increment_attempts=True,
        increment_segments=True,
    )
    assert first.prior_attempt_started_at is None and first.attempt_started_at == "2026-11-19T09:01:00.000Z"
    second = repo.update(  # the lease ran out: reclaimed
        ref,
        {
            "status": TaskStatus.RUNNING,
            "attempt_started_at": "2026-11-19T09:05:00.000Z",
            "lease_expires_at": "2026-11-19T09:06:00.000Z",
        },
        CLAIM,
        increment_attempts=True,
        increment_segments=True,
    )
    assert second.prior_attempt_started_at == "2026-11-19T09:01:00.000Z"
    assert second.attempt_started_at == "2026-11-19T09:05:00.000Z" and second.retry_of == "t-000"
    entry = attempt_entry(second, AttemptOutcome.COMPLETED, "2026-11-19T09:05:02.000Z")
    done = repo.update(
        ref,
        {"status": TaskStatus.COMPLETED, "attempt_history": attempt_history(second, 10, entry)},
        Expect(frozenset({TaskStatus.RUNNING}), attempts=2),
        current=second,
    )
    lost, completed = repo.get("t-001").attempt_history
    assert done.attempt_history == (lost, completed)
    assert (lost.number, lost.outcome, lost.started_at, lost.duration_ms) == (
        1,
        AttemptOutcome.LOST,
        "2026-11-19T09:01:00.000Z",
        240_000,
    )
    assert (completed.number, completed.duration_ms, completed.segments) == (2, 2000, 2)
