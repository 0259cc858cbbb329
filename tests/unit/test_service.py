import json

import pytest
from taskrunner.domain.errors import (
    DependencyUnavailableError,
    EgressDeniedError,
    IdempotencyConflictError,
    InvalidParametersError,
    InvalidTransitionError,
    TaskNotFoundError,
    UnknownTaskTypeError,
)
from taskrunner.domain.models import CallbackStatus, TaskStatus
from taskrunner.domain.service import Policy, SubmitRequest, TaskService, backoff_seconds

from tests.support.fakes import make_fakes


def submit(f, name="sum", parameters=None, **kw):
    return f.services.tasks.submit(
        "default",
        SubmitRequest(name=name, parameters=parameters if parameters is not None else {"numbers": [1, 2]}, **kw),
    ).task


def deliver(f, task, remaining=900.0):
    return f.services.worker.run(task.ref, remaining_seconds=remaining, timeout_hint=task.timeout_seconds)


def test_submit_stores_pending_then_enqueues():
    f = make_fakes()
    task = submit(f)
    assert f.repo.tasks[task.task_id].status is TaskStatus.PENDING
    assert [t.task_id for _, t, _ in f.queue.sent] == [task.task_id]
    assert task.due_at is not None


def test_submit_unknown_type_lists_known_types_and_stores_nothing():
    f = make_fakes()
    with pytest.raises(UnknownTaskTypeError) as exc:
        submit(f, name="nope")
    assert "sleep" in exc.value.known and "sum" in exc.value.known
    assert f.repo.tasks == {} and f.queue.sent == []


def test_submit_bad_parameters_names_the_field():
    f = make_fakes()
    with pytest.raises(InvalidParametersError) as exc:
        submit(f, name="prime", parameters={"n": 0})
    assert exc.value.errors[0]["loc"] == ["body", "parameters", "n"]
    assert f.repo.tasks == {}


def test_submit_when_queue_is_down_keeps_the_task_for_the_reconciler():
    f = make_fakes()
    f.queue.fail_next = DependencyUnavailableError("SQS", "down")
    task = submit(f)
    assert f.repo.tasks[task.task_id].status is TaskStatus.PENDING
    assert f.queue.sent == []
    f.clock.advance(Policy().pending_grace_seconds + 1)
    assert f.services.reconciler.run_once() == [task.task_id]
    assert [t.task_id for _, t, _ in f.queue.sent] == [task.task_id]


def test_submit_when_table_is_down_raises_and_sends_nothing():
    f = make_fakes()
    f.repo.fail_next = DependencyUnavailableError("DynamoDB", "down")
    with pytest.raises(DependencyUnavailableError):
        submit(f)
    assert f.queue.sent == [] and f.repo.tasks == {}


def test_callback_url_is_checked_at_submit():
    f = make_fakes()

    def deny(url):
        raise EgressDeniedError("refused: private")

    service = TaskService(f.repo, f.queue, f.services.tasks.catalog, url_check=deny)
    with pytest.raises(EgressDeniedError):
        service.submit(
            "default", SubmitRequest(name="sum", parameters={"numbers": [1]}, callback_url="http://10.0.0.1/x")
        )
    assert f.repo.tasks == {}


def test_idempotency_key_replays_and_conflicts():
    f = make_fakes()
    first = f.services.tasks.submit("default", SubmitRequest("sum", {"numbers": [1]}), idempotency_key="k1")
    again = f.services.tasks.submit("default", SubmitRequest("sum", {"numbers": [1]}), idempotency_key="k1")
    assert again.task.task_id == first.task.task_id and not again.created
    assert len(f.queue.sent) == 1
    with pytest.raises(IdempotencyConflictError):
        f.services.tasks.submit("default", SubmitRequest("sum", {"numbers": [2]}), idempotency_key="k1")


def test_get_of_another_owner_is_not_found():
    f = make_fakes()
    task = submit(f)
    with pytest.raises(TaskNotFoundError):
        f.services.tasks.get("someone-else", task.task_id)


def test_worker_completes_and_enqueues_callback():
    f = make_fakes()
    task = submit(f, callback_url="https://example.com/hook")
    outcome = deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert outcome.done and stored.status is TaskStatus.COMPLETED
    assert stored.result == {"operation": "sum", "result": 3, "count": 2}
    assert stored.attempts == 1 and stored.started_at and stored.completed_at
    assert stored.due_at is None and stored.progress.percent == 100
    assert f.queue.callbacks == [task.task_id]


def test_duplicate_delivery_runs_once():
    f = make_fakes()
    task = submit(f, name="message", parameters={"content": "hello"})
    deliver(f, task)
    deliver(f, task)
    assert len(f.messages.messages) == 1
    assert f.repo.tasks[task.task_id].attempts == 1


def test_delivery_while_another_claim_is_live_comes_back_later():
    f = make_fakes()
    task = submit(f)
    f.repo.update(task.ref, {"status": TaskStatus.RUNNING, "lease_expires_at": "2026-11-19T09:05:00.000Z"}, _any())
    outcome = deliver(f, task)
    assert not outcome.done and outcome.retry_after_seconds > 0
    assert f.repo.tasks[task.task_id].attempts == 0


def _any():
    from taskrunner.domain.models import ACTIVE_STATUSES, Expect

    return Expect(frozenset(ACTIVE_STATUSES))


def test_expired_lease_is_reclaimed_and_attempt_counted():
    f = make_fakes()
    task = submit(f)
    f.repo.update(
        task.ref,
        {"status": TaskStatus.RUNNING, "lease_expires_at": "2026-11-19T09:00:30.000Z"},
        _any(),
        increment_attempts=True,
    )
    f.clock.advance(60)
    outcome = deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert outcome.done and stored.status is TaskStatus.COMPLETED and stored.attempts == 2


def test_failure_retries_with_backoff_then_fails():
    f = make_fakes(policy=Policy(retry_base_seconds=2, retry_cap_seconds=100, progress_min_interval_seconds=0))
    task = submit(f, name="fail", parameters={"message": "boom"}, max_attempts=2)
    first = deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert not first.done and first.retry_after_seconds == backoff_seconds(1, 2, 100, lambda: 0.5)
    assert stored.status is TaskStatus.RETRYING and stored.error.message == "boom" and stored.next_attempt_at
    second = deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert second.done and stored.status is TaskStatus.FAILED and stored.attempts == 2
    assert stored.error.type == "IntentionalFailure"


def test_retry_then_success():
    f = make_fakes()
    task = submit(f, name="fail", parameters={"succeed_on_attempt": 2})
    deliver(f, task)
    deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.COMPLETED and stored.result == {"succeeded_on_attempt": 2}


def test_non_retryable_failure_fails_at_once():
    f = make_fakes()
    task = submit(f, name="fail", parameters={"retryable": False})
    assert deliver(f, task).done
    assert f.repo.tasks[task.task_id].status is TaskStatus.FAILED
    assert f.repo.tasks[task.task_id].attempts == 1


def test_timeout_is_enforced_and_retried():
    f = make_fakes(policy=Policy(progress_min_interval_seconds=0))
    task = submit(f, name="sleep", parameters={"seconds": 5}, timeout_seconds=1, max_attempts=1)
    outcome = deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert outcome.done and stored.status is TaskStatus.FAILED
    assert stored.error.type == "TaskTimeoutError" and "1 s" in stored.error.message


def test_remaining_lambda_time_bounds_the_attempt_of_a_message_without_timeout():
    f = make_fakes(policy=Policy(progress_min_interval_seconds=0, stop_margin_seconds=1))
    task = submit(f, name="sleep", parameters={"seconds": 10}, max_attempts=1)
    f.services.worker.run(task.ref, remaining_seconds=2.0, timeout_hint=None)
    assert f.repo.tasks[task.task_id].error.type == "TaskTimeoutError"


def test_a_task_that_cannot_get_its_whole_timeout_is_not_claimed():
    """Later records of a batch get what is left of the invocation: a task whose timeout does
    not fit is handed back at once, unclaimed and with its attempt unspent."""
    f = make_fakes(policy=Policy(progress_min_interval_seconds=0, stop_margin_seconds=5))
    task = submit(f, name="sleep", parameters={"seconds": 1}, timeout_seconds=60)
    outcome = deliver(f, task, remaining=30.0)
    stored = f.repo.tasks[task.task_id]
    assert not outcome.done and outcome.retry_after_seconds == 0
    assert stored.status is TaskStatus.PENDING and stored.attempts == 0
    outcome = deliver(f, task, remaining=900.0)  # a fresh invocation
    stored = f.repo.tasks[task.task_id]
    assert outcome.done and stored.status is TaskStatus.COMPLETED and stored.attempts == 1


def test_result_too_large_fails_clearly():
    f = make_fakes(policy=Policy(result_max_bytes=100, progress_min_interval_seconds=0))
    task = submit(f, name="fibonacci", parameters={"n": 2000})
    deliver(f, task)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.FAILED and stored.error.type == "ResultTooLargeError"
    assert stored.attempts == 1


def test_cancel_pending_and_conflict_when_terminal():
    f = make_fakes()
    task = submit(f)
    cancelled = f.services.tasks.cancel("default", task.task_id)
    assert cancelled.status is TaskStatus.CANCELLED and cancelled.due_at is None
    assert deliver(f, task).done
    assert f.repo.tasks[task.task_id].status is TaskStatus.CANCELLED
    with pytest.raises(InvalidTransitionError):
        f.services.tasks.cancel("default", task.task_id)


def test_cancelling_a_waiting_task_sends_its_callback():
    f = make_fakes()
    task = submit(f, callback_url="https://example.com/hook")
    f.services.tasks.cancel("default", task.task_id)
    assert f.queue.callbacks == [task.task_id]
    f.services.callbacks.deliver(task.task_id)
    assert json.loads(f.http.requests[-1]["body"])["status"] == "CANCELLED"


def test_cancel_running_is_honoured_at_next_check():
    f = make_fakes(virtual_time=False)  # the task still sleeps (for real) when the cancel comes
    task = submit(f, name="sleep", parameters={"seconds": 3})
    import threading

    result = {}
    t = threading.Thread(target=lambda: result.setdefault("o", deliver(f, task)))
    t.start()
    from tests.support.receiver import poll

    poll(lambda: f.repo.tasks[task.task_id].status is TaskStatus.RUNNING, 5)
    requested = f.services.tasks.cancel("default", task.task_id)
    assert requested.status is TaskStatus.RUNNING and requested.cancel_requested
    t.join(10)
    assert f.repo.tasks[task.task_id].status is TaskStatus.CANCELLED


def test_callback_delivery_retry_then_delivered():
    f = make_fakes(callback_statuses=[500, 200])
    task = submit(f, callback_url="https://example.com/hook")
    deliver(f, task)
    first = f.services.callbacks.deliver(task.task_id)
    assert not first.done and first.retry_after_seconds > 0
    assert f.repo.tasks[task.task_id].callback.status is CallbackStatus.RETRYING
    assert "500" in f.repo.tasks[task.task_id].callback.last_error
    second = f.services.callbacks.deliver(task.task_id)
    cb = f.repo.tasks[task.task_id].callback
    assert second.done and cb.status is CallbackStatus.DELIVERED and cb.attempts == 2
    payload = json.loads(f.http.requests[-1]["body"])
    assert payload["task_id"] == task.task_id and payload["status"] == "COMPLETED" and payload["result"]["result"] == 3
    assert f.services.callbacks.deliver(task.task_id).done
    assert len(f.http.requests) == 2  # delivered callbacks are not sent again


def test_callback_410_stops_and_max_attempts_fail():
    f = make_fakes(callback_statuses=[410])
    task = submit(f, callback_url="https://example.com/hook")
    deliver(f, task)
    assert f.services.callbacks.deliver(task.task_id).done
    assert f.repo.tasks[task.task_id].callback.status is CallbackStatus.FAILED
    f2 = make_fakes(policy=Policy(callback_max_attempts=3), callback_statuses=[500, 500, 500, 500])
    task2 = submit(f2, callback_url="https://example.com/hook")
    deliver(f2, task2)
    outcomes = [f2.services.callbacks.deliver(task2.task_id) for _ in range(3)]
    assert [o.done for o in outcomes] == [False, False, True]
    stored = f2.repo.tasks[task2.task_id]
    assert stored.callback.status is CallbackStatus.FAILED and stored.callback.attempts == 3
    assert stored.status is TaskStatus.COMPLETED and stored.result["result"] == 3


def test_dead_letter_marks_failed_with_reason():
    f = make_fakes()
    task = submit(f, callback_url="https://example.com/hook")
    f.services.worker.fail_from_dead_letter(task.task_id, "moved to the DLQ after 15 receives")
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.FAILED and "DLQ" in stored.error.message
    assert f.queue.callbacks == [task.task_id]


def test_reconciler_redrives_expired_running_task_once():
    f = make_fakes()
    task = submit(f)
    f.repo.update(
        task.ref,
        {
            "status": TaskStatus.RUNNING,
            "lease_expires_at": "2026-11-19T09:00:30.000Z",
            "due_at": "2026-11-19T09:00:30.000Z",
        },
        _any(),
    )
    f.clock.advance(31)
    assert f.services.reconciler.run_once() == [task.task_id]
    assert f.services.reconciler.run_once() == []  # due_at moved on: no pile-up


def test_backoff_grows_and_is_capped():
    values = [backoff_seconds(n, 2, 60, lambda: 1.0) for n in range(1, 10)]
    assert values[:4] == [2, 4, 8, 16] and max(values) == 60
    assert backoff_seconds(3, 2, 60, lambda: 0.0) == 4


def test_list_filters_and_paginates_newest_first():
    f = make_fakes()
    ids = []
    for _ in range(5):
        ids.append(submit(f).task_id)
        f.clock.advance(1)
    deliver(f, f.repo.tasks[ids[0]])
    page = f.services.tasks.list("default", limit=2)
    assert [t.task_id for t in page.items] == [ids[4], ids[3]] and page.cursor
    page2 = f.services.tasks.list("default", limit=2, cursor=page.cursor)
    assert [t.task_id for t in page2.items] == [ids[2], ids[1]]
    assert [t.task_id for t in f.services.tasks.list("default", status=TaskStatus.COMPLETED).items] == [ids[0]]
    assert len(f.services.tasks.list("default", active=True).items) == 4


def test_http_request_url_with_a_refused_literal_address_is_refused_at_submit():
    from taskrunner.adapters.egress import EgressPolicy

    f = make_fakes()
    service = TaskService(
        f.repo, f.queue, f.services.tasks.catalog, parameter_url_check=EgressPolicy().check_literal_url
    )
    with pytest.raises(InvalidParametersError) as caught:
        service.submit("default", SubmitRequest(name="http_request", parameters={"url": "http://10.0.0.7:8080/x"}))
    assert caught.value.errors[0]["loc"] == ["body", "parameters", "url"]
    assert "private-use" in caught.value.errors[0]["msg"]
    assert f.repo.tasks == {} and f.queue.sent == []
    # a name is left to the run-time check (no DNS lookup at submit); a public literal passes
    service.submit("default", SubmitRequest(name="http_request", parameters={"url": "https://api.example.com/x"}))
    service.submit("default", SubmitRequest(name="http_request", parameters={"url": "https://93.184.216.34/x"}))
    assert len(f.queue.sent) == 2


def test_a_claim_leaves_due_at_and_the_reconciler_follows_the_lease_then_redrives_a_crashed_worker():
    f = make_fakes()
    task = submit(f)
    writes = []
    real_update = f.repo.update

    def crash_after_claim(ref, changes, expect, **kw):
        writes.append(dict(changes))
        if len(writes) > 1:
            raise RuntimeError("worker crashed")  # nothing after the claim is written
        return real_update(ref, changes, expect, **kw)

    f.repo.update = crash_after_claim
    with pytest.raises(RuntimeError):
        f.services.worker.run(task.ref, remaining_seconds=900.0, timeout_hint=300)
    f.repo.update = real_update
    assert "due_at" not in writes[0] and "lease_expires_at" in writes[0]  # the claim writes no index key
    claimed = f.repo.tasks[task.task_id]
    assert claimed.status is TaskStatus.RUNNING and claimed.due_at == task.due_at
    f.clock.advance(121)  # the pending grace has passed, the lease (300 s + 30) has not
    assert f.services.reconciler.run_once() == []  # nothing sent: due_at follows the lease
    assert f.repo.tasks[task.task_id].due_at == claimed.lease_expires_at
    assert f.queue.sent[-1][1].task_id == task.task_id and len(f.queue.sent) == 1
    f.clock.advance(300)  # the lease has run out too: the crashed worker's task is sent again
    assert f.services.reconciler.run_once() == [task.task_id]
    assert len(f.queue.sent) == 2
    assert f.services.reconciler.run_once() == []  # due_at moved on: no pile-up


def test_a_short_task_moves_due_at_at_no_write_between_submit_and_outcome():
    f = make_fakes()
    task = submit(f)
    dues = []
    real_update = f.repo.update
    f.repo.update = lambda ref, changes, expect, **kw: (
        dues.append("due_at" in changes),
        real_update(ref, changes, expect, **kw),
    )[1]
    deliver(f, task)
    assert f.repo.tasks[task.task_id].status is TaskStatus.COMPLETED
    assert dues[0] is False  # the claim
