"""ReconcilerFunction: on a schedule, re-drives tasks that nothing is carrying."""

from __future__ import annotations

import logging
from typing import Any

from ..bootstrap import Services, get_services

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run(event, get_services())


def run(event: dict[str, Any], services: Services) -> dict[str, Any]:
    redriven = services.reconciler.run_once(limit=200)
    if redriven:
        logger.warning("re-drove %d tasks", len(redriven), extra={"task_ids": redriven[:50]})
    return {"redriven": len(redriven)}
