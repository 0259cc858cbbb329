"""NotifierFunction: delivers callbacks from CallbacksQueue, retrying with backoff."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..bootstrap import Services, get_services

logger = logging.getLogger(__name__)


class DeliveryRetryError(Exception):
    pass


def deliver_record(record: Any, services: Services) -> None:
    try:
        task_id = str(json.loads(record.body)["task_id"])
    except (ValueError, KeyError, TypeError):
        logger.error("malformed callback message dropped", extra={"message_id": record.message_id})
        return
    outcome = services.callbacks.deliver(task_id)
    if not outcome.done:
        services.queue.change_visibility(record.event_source_arn, record.receipt_handle, outcome.retry_after_seconds)
        raise DeliveryRetryError(f"callback for {task_id}: next attempt in {outcome.retry_after_seconds} s")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: Any) -> None:
        try:
            deliver_record(record, services)
        except DeliveryRetryError:
            raise
        except Exception:
            logger.exception("callback record failed; it will be redelivered", extra={"message_id": record.message_id})
            raise

    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )
