"""NotifierFunction: delivers callbacks from CallbacksQueue, retrying with backoff.

One slow or hostile receiver delays only its own callbacks: the records of a batch are
delivered in parallel (a bounded thread pool), every delivery is held to the callback
deadline (connect, headers and body together), and a record that could no longer finish
before the invocation's time runs out is not started: it is released for an early
redelivery without counting an attempt.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..bootstrap import Services, get_services
from . import sqs_batch

logger = logging.getLogger(__name__)

MAX_PARALLEL_DELIVERIES = 10  # the event source mapping's BatchSize: every record starts at once
RELEASE_AFTER_SECONDS = 1  # a record released unstarted comes back this soon
MARGIN_SECONDS = 2.0  # to record the outcome and answer after the last delivery's deadline
MAX_DEFERRING_RECEIVES = 10  # + CALLBACK_MAX_ATTEMPTS (8) stays under the queue's maxReceiveCount (20)


def deliver_record(record: Any, services: Services) -> None:
    try:
        task_id = str(json.loads(record.body)["task_id"])
    except (ValueError, KeyError, TypeError):
        logger.error("malformed callback message dropped", extra={"message_id": record.message_id})
        return
    # Deferrals for a cooling receiver count as receives: after a few, attempt anyway, so that a
    # message never reaches CallbacksQueue's maxReceiveCount (20) without its attempts.
    receives = int(getattr(record.attributes, "approximate_receive_count", 1) or 1)
    outcome = services.callbacks.deliver(task_id, may_defer=receives < MAX_DEFERRING_RECEIVES)
    if not outcome.done:
        sqs_batch.redeliver_later(record, services, outcome.retry_after_seconds, f"callback for {task_id}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def _remaining_seconds(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else float(remaining()) / 1000.0


def _in_trace(work: Callable[[], None]) -> Callable[[], None]:
    """``work`` run in a pool thread under the caller's X-Ray segment (when tracing is on)."""
    core = sys.modules.get("aws_xray_sdk.core")
    if core is None:
        return work
    recorder = core.xray_recorder
    try:
        entity = recorder.context._local.entities[-1] if getattr(recorder.context._local, "entities", None) else None
    except Exception:
        entity = None
    if entity is None:
        return work

    def traced() -> None:
        try:
            recorder.context.set_trace_entity(entity)
        except Exception:
            logger.debug("trace context not carried into the delivery thread")
        try:
            work()
        finally:
            try:
                recorder.context.clear_trace_entities()
            except Exception:
                logger.debug("trace context not cleared")

    return traced


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    records = [SQSRecord(raw) for raw in event.get("Records") or []]
    needed = services.settings.policy.callback_timeout_seconds + MARGIN_SECONDS
    failures: dict[str, BaseException] = {}

    def one(record: SQSRecord) -> None:
        try:
            left = _remaining_seconds(context)
            if left is not None and left < needed:
                sqs_batch.redeliver_later(
                    record,
                    services,
                    RELEASE_AFTER_SECONDS,
                    f"callback not started: {left:.1f} s left in this invocation",
                )
            deliver_record(record, services)
        except Exception as exc:
            failures[record.message_id] = exc

    if records:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_DELIVERIES, len(records))) as pool:
            for record in records:
                pool.submit(_in_trace(lambda record=record: one(record)))  # type: ignore[misc]

    def report(record: Any) -> None:
        failure = failures.get(record.message_id)
        if failure is not None:
            raise failure

    return sqs_batch.process(event, context, report, what="callback")
