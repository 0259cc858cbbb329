"""NotifierFunction: delivers callbacks from CallbacksQueue, retrying with backoff."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..bootstrap import Services, get_services
from . import sqs_batch

logger = logging.getLogger(__name__)


def deliver_record(record: Any, services: Services) -> None:
    try:
        task_id = str(json.loads(record.body)["task_id"])
    except (ValueError, KeyError, TypeError):
        logger.error("malformed callback message dropped", extra={"message_id": record.message_id})
        return
    outcome = services.callbacks.deliver(task_id)
    if not outcome.done:
        sqs_batch.redeliver_later(record, services, outcome.retry_after_seconds, f"callback for {task_id}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    return sqs_batch.process(event, context, lambda record: deliver_record(record, services), what="callback")
