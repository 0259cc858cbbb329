"""The operations monitor's routes: counts by status, queue depths, charts' series, id search.

All are read-only, for the caller's own tasks (queue depths are the service's: a queue holds
every owner's messages), and bounded in the items they read and the time they take.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..domain.monitor import InvalidQueryError
from . import api_schemas as schemas
from .api_routes import OwnerDep, ServicesDep

api = APIRouter(responses=schemas.COMMON_ERRORS, tags=["monitor"])
Range = Literal["15m", "1h", "24h", "7d", "all"]


class StatusCounts(BaseModel):
    PENDING: int
    RUNNING: int
    RETRYING: int
    COMPLETED: int
    FAILED: int
    CANCELLED: int


class Stats(BaseModel):
    range: Range
    since: str | None
    counts: StatusCounts
    total: int
    complete: bool
    oldest_pending_seconds: float | None
    generated_at: str


class QueueDepth(BaseModel):
    name: str
    kind: Literal["tasks", "callbacks", "dead-letter"]
    visible: int
    in_flight: int
    delayed: int


class Queues(BaseModel):
    queues: list[QueueDepth]
    generated_at: str


class Series(BaseModel):
    minutes: int
    since: str
    until: str
    sampled: int
    complete: bool
    t: list[int]
    completed: list[int]
    failed: list[int]
    run_p50: list[float | None]
    run_p95: list[float | None]
    wait_p50: list[float | None]
    wait_p95: list[float | None]


class SearchMatch(BaseModel):
    task_id: str
    name: str
    status: str
    created_at: str


class SearchResult(BaseModel):
    query: str
    matches: list[SearchMatch]
    searched: int
    complete: bool


def _invalid(exc: InvalidQueryError) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": ["query", exc.field], "msg": exc.message, "type": "value_error"}]}, status_code=422
    )


@api.get(
    "/api/stats",
    response_model=Stats,
    summary="Your tasks counted by status (DynamoDB counts, not a sample)",
    responses={422: schemas.error("Unknown range")},
)
async def stats(
    svc: ServicesDep,
    owner: OwnerDep,
    range: Annotated[Range, Query(description="Tasks created in the last 15m, 1h, 24h, 7d, or all.")] = "all",
) -> Any:
    try:
        return svc.monitor.counts(owner, range)
    except InvalidQueryError as exc:
        return _invalid(exc)


@api.get("/api/queues", response_model=Queues, summary="Depth of each task queue and dead-letter queue (SQS)")
async def queues(svc: ServicesDep, owner: OwnerDep) -> Any:
    return svc.monitor.queues()


@api.get(
    "/api/stats/series",
    response_model=Series,
    summary="Per minute: tasks ended, p50/p95 run duration and queue wait (your recent tasks)",
    responses={422: schemas.error("minutes out of range")},
)
async def series(
    svc: ServicesDep,
    owner: OwnerDep,
    minutes: Annotated[int, Query(ge=5, le=180, description="How many minutes back (one bucket each).")] = 60,
) -> Any:
    return svc.monitor.series(owner, minutes)


@api.get(
    "/api/search",
    response_model=SearchResult,
    summary="Find your task by its full id or the first 6 or more characters of it",
    responses={
        404: schemas.error("No task of yours has this id (or starts with it)"),
        422: schemas.error("Too short, or not characters of a task id"),
    },
)
async def search(
    svc: ServicesDep,
    owner: OwnerDep,
    id: Annotated[str, Query(min_length=6, max_length=36, description="A task id or its first 6+ characters.")],
) -> Any:
    try:
        return svc.monitor.search(owner, id, svc.tasks.get)
    except InvalidQueryError as exc:
        return _invalid(exc)
