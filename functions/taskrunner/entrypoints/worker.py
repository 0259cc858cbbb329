"""WorkerFunction: SQS batches of task messages, with partial batch failures."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..bootstrap import Services, get_services
from ..domain.models import TaskRef

logger = logging.getLogger(__name__)


class RetryLaterError(Exception):
    """The record is reported failed so SQS delivers it again after the visibility we set."""


def parse_task_message(body: str) -> tuple[TaskRef, float | None] | None:
    try:
        data = json.loads(body)
        ref = TaskRef(str(data["task_id"]), str(data["owner"]), str(data["created_at"]))
    except (ValueError, KeyError, TypeError):
        return None
    timeout = data.get("timeout")
    return ref, float(timeout) if timeout else None


def run_record(record: Any, services: Services, remaining_seconds: float) -> None:
    """Run one SQS record (a Powertools SQSRecord or anything with the same attributes)."""
    parsed = parse_task_message(record.body)
    if parsed is None:
        logger.error("malformed task message dropped", extra={"message_id": record.message_id})
        return
    ref, timeout = parsed
    outcome = services.worker.run(ref, remaining_seconds=remaining_seconds, timeout_hint=timeout)
    if not outcome.done:
        services.queue.change_visibility(record.event_source_arn, record.receipt_handle, outcome.retry_after_seconds)
        raise RetryLaterError(f"task {ref.task_id}: next delivery in {outcome.retry_after_seconds} s")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: Any) -> None:
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
        try:
            run_record(record, services, remaining)
        except RetryLaterError:
            raise
        except Exception:
            logger.exception("task record failed; it will be redelivered", extra={"message_id": record.message_id})
            raise

    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )
