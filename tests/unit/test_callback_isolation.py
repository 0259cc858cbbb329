"""One slow or hostile callback receiver delays only its own callbacks.

Both receivers are real HTTP servers on 127.0.0.1; the callbacks go through the real
signed sender and the guarded client, with a 2 s callback deadline."""

import dataclasses
import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
from taskrunner.adapters.egress import EgressPolicy, GuardedHttpClient
from taskrunner.adapters.webhook_sender import WebhookSender
from taskrunner.domain.models import CallbackState, TaskStatus
from taskrunner.domain.service import CallbackService, Policy
from taskrunner.entrypoints import notifier

from tests.support.fakes import make_fakes
from tests.support.http_server import LoopbackServer
from tests.support.lambda_context import LambdaContext
from tests.support.receiver import CallbackReceiver
from tests.unit.factories import a_task

DEADLINE = 2.0
ARN = "arn:aws:sqs:us-east-1:123456789012:taskrunner-dev-CallbacksQueue"


class DrippingReceiver(LoopbackServer):
    """Sends its headers, then one body byte per second: no single read ever times out."""

    def __init__(self):
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                try:
                    for _ in range(1000):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        super().__init__(Handler, path="/hook")


def _batch(f, urls):
    policy = Policy(callback_timeout_seconds=DEADLINE)
    sender = WebhookSender(
        GuardedHttpClient(EgressPolicy(allow_loopback=True), max_redirects=0), lambda owner: "whsec_dGVzdA=="
    )
    services = dataclasses.replace(
        f.services,
        settings=dataclasses.replace(f.services.settings, policy=policy),
        callbacks=CallbackService(f.repo, sender, policy=policy, clock=f.clock, rand=lambda: 0.5),
    )
    records = []
    for i, url in enumerate(urls):
        task_id = f"t-{i}"
        f.repo.create(
            a_task(task_id=task_id, status=TaskStatus.COMPLETED, result={"n": i}, callback=CallbackState(url=url))
        )
        records.append(
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"rh-{i}",
                "body": json.dumps({"task_id": task_id}),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": ARN,
            }
        )
    return services, {"Records": records}


def test_a_dripping_receiver_fails_at_the_deadline_and_the_good_one_is_delivered_in_the_same_invocation():
    f = make_fakes()
    with DrippingReceiver() as slow, CallbackReceiver() as good:
        services, event = _batch(f, [slow.url, good.url])
        started = time.monotonic()
        result = notifier.process_batch(event, LambdaContext("notifier", remaining_seconds=60.0), services)
        elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 1.5, elapsed
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert f.repo.tasks["t-1"].callback.status.value == "DELIVERED" and len(good.delivered()) == 1
    stalled = f.repo.tasks["t-0"].callback
    assert stalled.status.value == "RETRYING" and "deadline" in stalled.last_error and stalled.attempts == 1
    assert slow.hits == 1


def test_many_slow_receivers_do_not_serialise_a_batch():
    f = make_fakes()
    with DrippingReceiver() as slow, CallbackReceiver() as good:
        services, event = _batch(f, [slow.url] * 5 + [good.url])
        started = time.monotonic()
        result = notifier.process_batch(event, LambdaContext("notifier", remaining_seconds=60.0), services)
        elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 1.5, elapsed  # in parallel, not 5 x the deadline
    assert len(result["batchItemFailures"]) == 5 and len(good.delivered()) == 1


@pytest.mark.parametrize("remaining", [1.0, DEADLINE + 1.0])
def test_records_that_cannot_finish_in_time_are_released_unstarted_without_an_attempt(remaining):
    f = make_fakes()
    with CallbackReceiver() as good:
        services, event = _batch(f, [good.url, good.url])
        result = notifier.process_batch(event, LambdaContext("notifier", remaining_seconds=remaining), services)
        assert good.requests == []
    assert len(result["batchItemFailures"]) == 2
    for task_id in ("t-0", "t-1"):
        callback = f.repo.tasks[task_id].callback
        assert callback.attempts == 0 and callback.status.value == "PENDING"
    assert [seconds for _, _, seconds in f.queue.visibility] == [notifier.RELEASE_AFTER_SECONDS] * 2
