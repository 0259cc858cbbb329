"""Per-receiver backoff: a receiver that keeps failing is left alone for a while, without
spending other callbacks' attempts on it; other receivers are not affected."""

from taskrunner.domain.models import CallbackState, TaskStatus
from taskrunner.domain.receivers import ReceiverHealth

from tests.support.fakes import make_fakes
from tests.unit.factories import a_task

DOWN = "https://down.example/hook"
UP = "https://up.example:8443/hook"


def finished(f, task_id, url):
    f.repo.create(a_task(task_id=task_id, status=TaskStatus.COMPLETED, callback=CallbackState(url=url)))
    return task_id


def test_a_failing_receiver_cools_down_and_others_go_on():
    f = make_fakes(callback_statuses=[503, 503, 503])
    callbacks = f.services.callbacks
    for i in range(3):  # three failures in a row on the same origin
        outcome = callbacks.deliver(finished(f, f"t-{i}", DOWN))
        assert not outcome.done and f.repo.tasks[f"t-{i}"].callback.attempts == 1
    sent = len(f.http.requests)
    outcome = callbacks.deliver(finished(f, "t-3", DOWN))
    assert not outcome.done and outcome.retry_after_seconds == 30  # CALLBACK_RETRY_BASE_SECONDS
    assert f.repo.tasks["t-3"].callback.attempts == 0 and len(f.http.requests) == sent  # not tried, not counted
    assert callbacks.deliver(finished(f, "t-up", UP)).done  # another receiver is not held back
    assert f.repo.tasks["t-up"].callback.status.value == "DELIVERED"
    f.clock.advance(31)
    assert callbacks.deliver("t-3").done  # the cool-down is over: tried, and it answers now
    assert f.repo.tasks["t-3"].callback.attempts == 1
    assert callbacks.deliver(finished(f, "t-4", DOWN)).done  # a delivery ended the cool-down


def test_a_callback_deferred_often_enough_is_attempted_anyway():
    f = make_fakes(callback_statuses=[503, 503, 503, 503])
    for i in range(3):
        f.services.callbacks.deliver(finished(f, f"t-{i}", DOWN))
    outcome = f.services.callbacks.deliver(finished(f, "t-3", DOWN), may_defer=False)
    assert not outcome.done and f.repo.tasks["t-3"].callback.attempts == 1  # attempted (and failed)


def test_cool_down_doubles_and_is_capped():
    now = [0.0]
    health = ReceiverHealth(lambda: now[0], threshold=2, base_seconds=10, cap_seconds=25)
    health.failed("a")
    assert health.cooling("a") == 0
    health.failed("a")
    assert health.cooling("a") == 10
    health.failed("a")
    assert health.cooling("a") == 20
    health.failed("a")
    assert health.cooling("a") == 25 and health.cooling("b") == 0
    health.delivered("a")
    assert health.cooling("a") == 0


def test_the_notifier_stops_deferring_before_the_queue_would_dead_letter():
    """CallbacksQueue dead-letters a message at 20 receives: deferrals stop at 10, leaving room
    for every attempt (CALLBACK_MAX_ATTEMPTS, 8)."""
    import json

    import pytest
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from taskrunner.entrypoints import notifier, sqs_batch

    f = make_fakes(callback_statuses=[503, 503, 503, 503, 503])
    for i in range(3):
        f.services.callbacks.deliver(finished(f, f"t-{i}", DOWN))

    def record(receives):
        return SQSRecord(
            {
                "messageId": f"m-{receives}",
                "receiptHandle": "rh",
                "body": json.dumps({"task_id": "t-3"}),
                "attributes": {"ApproximateReceiveCount": str(receives)},
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:CallbacksQueue",
            }
        )

    finished(f, "t-3", DOWN)
    with pytest.raises(sqs_batch.RedeliverLaterError):
        notifier.deliver_record(record(9), f.services)
    assert f.repo.tasks["t-3"].callback.attempts == 0  # deferred
    with pytest.raises(sqs_batch.RedeliverLaterError):
        notifier.deliver_record(record(10), f.services)
    assert f.repo.tasks["t-3"].callback.attempts == 1  # attempted despite the cool-down
