"""DeadLetterFunction: a task message that reached TasksDLQ marks its task FAILED."""

from __future__ import annotations

import logging
from typing import Any

from ..bootstrap import Services, get_services
from . import sqs_batch
from .worker import parse_task_message

logger = logging.getLogger(__name__)


def fail_record(record: Any, services: Services) -> None:
    parsed = parse_task_message(record.body)
    if parsed is None:
        logger.error("malformed dead-letter message dropped", extra={"message_id": record.message_id})
        return
    ref = parsed[0]
    receives = record.attributes.approximate_receive_count if hasattr(record, "attributes") else "?"
    services.worker.fail_from_dead_letter(
        ref.task_id,
        f"the task's message was delivered {receives} times without finishing and moved to the dead-letter queue",
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    return sqs_batch.process(event, context, lambda record: fail_record(record, services), what="dead-letter")
