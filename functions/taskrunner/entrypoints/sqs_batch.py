"""What the SQS-fed functions (worker, notifier, dead-letter consumer) share: Powertools batch
processing with partial batch failures, and "deliver this record again later"."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..bootstrap import Services

logger = logging.getLogger(__name__)


class RedeliverLaterError(Exception):
    """The record is reported failed so SQS delivers it again after the visibility we set."""


def redeliver_later(record: Any, services: Services, seconds: int, why: str) -> None:
    """Make the record's message visible again in ``seconds`` and report it failed."""
    services.queue.change_visibility(record.event_source_arn, record.receipt_handle, seconds)
    raise RedeliverLaterError(f"{why}: next delivery in {seconds} s")


def process(event: dict[str, Any], context: Any, handle: Callable[[Any], None], *, what: str) -> dict[str, Any]:
    """Run ``handle`` on every record; a failed record never fails its neighbours."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def record_handler(record: Any) -> None:
        try:
            handle(record)
        except RedeliverLaterError:
            raise
        except Exception:
            logger.exception("%s record failed; it will be redelivered", what, extra={"message_id": record.message_id})
            raise

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )
