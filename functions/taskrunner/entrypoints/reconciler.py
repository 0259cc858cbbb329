"""ReconcilerFunction: on a schedule, re-drives tasks that nothing is carrying."""

from __future__ import annotations

import logging
from typing import Any

from ..bootstrap import Services, get_services

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ..observability import run_handler

    return run_handler(lambda e, _c: run(e, get_services()), event, context)  # type: ignore[no-any-return]


def run(event: dict[str, Any], services: Services) -> dict[str, Any]:
    redriven = services.reconciler.run_once(limit=200)
    if redriven:
        logger.warning("re-drove %d tasks", len(redriven), extra={"task_ids": redriven[:50]})
    return {"redriven": len(redriven)}
