"""``GET /api/metrics``: an opt-in Prometheus scrape of the deployed stack (METRICS_ENDPOINT_ENABLED).

A Lambda execution environment sees only its own invocations, so this serves only what is
the same from every environment: the queues' depths (SQS GetQueueAttributes, granted to the
API's role in template.yaml). Task counters and durations are CloudWatch's (EMF) on AWS; the
local runner's /metrics has them too. Off by default: 404, before the API key is asked for.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response

from ..bootstrap import Services
from .api_routes import ServicesDep, current_owner

router = APIRouter()


def queues(svc: Services) -> dict[str, str]:
    """The stack's queues by logical id (as template.yaml names them, and the local /metrics)."""
    s = svc.settings
    return {
        "TasksQueue": s.tasks_queue_url,
        "IoTasksQueue": s.io_tasks_queue_url,
        "PriorityTasksQueue": s.priority_tasks_queue_url,
        "CallbacksQueue": s.callbacks_queue_url,
        "TasksDLQ": s.tasks_dlq_url,
        "CallbacksDLQ": s.callbacks_dlq_url,
    }


async def enabled(svc: ServicesDep) -> None:
    if not svc.settings.metrics_endpoint_enabled:
        raise HTTPException(status_code=404, detail="Not Found")


# the setting first (404 when off), then the API key (401 without one)
@router.get("/api/metrics", dependencies=[Depends(enabled), Depends(current_owner)], include_in_schema=False)
async def metrics(svc: ServicesDep) -> Response:
    # prometheus-client is imported here, on the first scrape, not with the API
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from ..adapters.prometheus_queues import QueueDepths

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueDepths(getattr(svc.queue, "client", None), queues(svc)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
