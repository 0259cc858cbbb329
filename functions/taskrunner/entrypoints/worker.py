"""WorkerFunction: SQS batches of task messages, with partial batch failures."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..bootstrap import Services, get_services
from ..domain.models import TaskRef
from . import sqs_batch

logger = logging.getLogger(__name__)


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
        sqs_batch.redeliver_later(record, services, outcome.retry_after_seconds, f"task {ref.task_id}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    def run(record: Any) -> None:
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
        run_record(record, services, remaining)

    return sqs_batch.process(event, context, run, what="task")
