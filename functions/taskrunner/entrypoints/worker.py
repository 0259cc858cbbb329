"""WorkerFunction: SQS batches of task messages, with partial batch failures."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..bootstrap import Services, get_services
from ..domain.execution import Continuation
from ..domain.models import TaskRef
from . import sqs_batch

logger = logging.getLogger(__name__)


def parse_task_message(body: str) -> tuple[TaskRef, float | None, Continuation | None] | None:
    try:
        data = json.loads(body)
        ref = TaskRef(str(data["task_id"]), str(data["owner"]), str(data["created_at"]))
        timeout = float(data["timeout"]) if data.get("timeout") else None
        more = data.get("continue")
        continuation = (
            Continuation(int(more["attempt"]), int(more["segment"]), more.get("handed_over_at") or None)
            if more is not None
            else None
        )
    except (ValueError, KeyError, TypeError):
        return None
    return ref, timeout, continuation


def run_record(
    record: Any, services: Services, remaining_seconds: float, invocation_seconds: float | None = None
) -> None:
    """Run one SQS record (a Powertools SQSRecord or anything with the same attributes)."""
    parsed = parse_task_message(record.body)
    if parsed is None:
        logger.error("malformed task message dropped", extra={"message_id": record.message_id})
        return
    ref, timeout, continuation = parsed
    outcome = services.worker.run(
        ref,
        remaining_seconds=remaining_seconds,
        timeout_hint=timeout,
        continuation=continuation,
        invocation_seconds=invocation_seconds,
    )
    if not outcome.done:
        sqs_batch.redeliver_later(record, services, outcome.retry_after_seconds, f"task {ref.task_id}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, c: process_batch(e, c, get_services()), event, context)  # type: ignore[no-any-return]


def process_batch(event: dict[str, Any], context: Any, services: Services) -> dict[str, Any]:
    # what a fresh invocation has: what was left when this one started
    invocation = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0

    def run(record: Any) -> None:
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
        run_record(record, services, remaining, invocation)

    return sqs_batch.process(event, context, run, what="task")
