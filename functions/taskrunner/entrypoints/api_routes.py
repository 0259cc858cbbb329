"""The HTTP routes. Each parses input, calls one service method and shapes the answer."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from ..bootstrap import Services
from ..domain.models import Task, TaskStatus
from ..domain.service import SubmitRequest
from . import api_schemas as schemas
from .sse import parse_last_event_id, task_events

router = APIRouter()


def services(request: Request) -> Services:
    provider = request.app.state.services_provider
    found: Services = provider()
    return found


def current_owner(request: Request, svc: Annotated[Services, Depends(services)]) -> str:
    return svc.settings.default_owner


ServicesDep = Annotated[Services, Depends(services)]
OwnerDep = Annotated[str, Depends(current_owner)]


def _links(task_id: str) -> dict[str, str]:
    base = f"/api/tasks/{task_id}"
    return {"self": base, "state": f"{base}/state", "stream": base, "cancel": f"{base}/cancel"}


def _public(task: Task) -> dict[str, Any]:
    return task.to_public()


@router.post(
    "/api/tasks",
    status_code=202,
    response_model=schemas.TaskAccepted,
    tags=["tasks"],
    summary="Submit a task",
    responses={409: {"description": "Idempotency-Key reused with another body"}, 422: {"description": "Unknown type or bad parameters"}},
)
def submit_task(
    body: schemas.TaskCreate,
    response: Response,
    svc: ServicesDep,
    owner: OwnerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    request = SubmitRequest(
        name=body.name,
        parameters=body.parameters,
        callback_url=body.callback_url,
        delay_seconds=body.delay_seconds,
        max_attempts=body.max_attempts,
        timeout_seconds=body.timeout_seconds,
        metadata=body.metadata,
        priority=body.priority,
    )
    result = svc.tasks.submit(owner, request, idempotency_key=idempotency_key)
    task = result.task
    response.headers["Location"] = f"/api/tasks/{task.task_id}/state"
    if not result.created:
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "task_id": task.task_id,
        "status": task.status.value,
        "name": task.name,
        "created_at": task.created_at,
        "links": _links(task.task_id),
        "message": "Task accepted" if result.created else "Task already accepted with this Idempotency-Key",
    }


@router.get(
    "/api/tasks",
    response_model=schemas.TaskPage,
    tags=["tasks"],
    summary="List tasks, newest first",
)
def list_tasks(
    svc: ServicesDep,
    owner: OwnerDep,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this status.")] = None,
    active: Annotated[bool, Query(description="Only PENDING, RUNNING and RETRYING tasks.")] = False,
    name: Annotated[str | None, Query(max_length=100, description="Only tasks of this type.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")] = None,
) -> dict[str, Any]:
    page = svc.tasks.list(owner, status=status, active=active, name=name, limit=limit, cursor=cursor)
    return {"tasks": [_public(t) for t in page.items], "total": len(page.items), "next_cursor": page.cursor}


@router.get(
    "/api/tasks/{task_id}",
    tags=["tasks"],
    summary="Follow a task: Server-Sent Events (or JSON with Accept: application/json)",
    responses={
        200: {"content": {"text/event-stream": {}, "application/json": {"schema": {"$ref": "#/components/schemas/TaskPublic"}}}},
        307: {"description": "On AWS: redirect to the streaming Function URL"},
        404: {"description": "Unknown task"},
    },
)
async def follow_task(
    task_id: str,
    request: Request,
    svc: ServicesDep,
    owner: OwnerDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    task = await anyio.to_thread.run_sync(svc.tasks.get, owner, task_id)
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/event-stream" not in accept:
        return JSONResponse(_public(task))
    settings = svc.settings
    if settings.stream_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{settings.stream_url}/api/tasks/{task_id}{query}", status_code=307)

    async def load() -> Task | None:
        return await anyio.to_thread.run_sync(svc.repository.get, task_id)

    events = task_events(
        load,
        task,
        last_event_id=parse_last_event_id(last_event_id),
        poll_seconds=settings.stream_poll_seconds,
        heartbeat_seconds=settings.stream_heartbeat_seconds,
        max_seconds=settings.stream_max_seconds,
    )
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get(
    "/api/tasks/{task_id}/state",
    response_model=schemas.TaskPublic,
    tags=["tasks"],
    summary="The task's current state",
    responses={404: {"description": "Unknown task"}},
)
def task_state(task_id: str, svc: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return _public(svc.tasks.get(owner, task_id))


@router.post(
    "/api/tasks/{task_id}/cancel",
    response_model=schemas.TaskPublic,
    tags=["tasks"],
    summary="Cancel a task",
    responses={404: {"description": "Unknown task"}, 409: {"description": "The task already ended"}},
)
def cancel_task(task_id: str, svc: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return _public(svc.tasks.cancel(owner, task_id))


@router.get("/api/task-types", response_model=schemas.TaskTypeList, tags=["tasks"], summary="Registered task types")
def task_types(svc: ServicesDep) -> dict[str, Any]:
    return {
        "task_types": [
            {
                "name": t.name,
                "description": t.description,
                "queue": t.queue,
                "timeout_seconds": t.timeout_seconds,
                "parameters_schema": t.parameters_schema(),
            }
            for t in svc.tasks.catalog.all()
        ]
    }


@router.get("/api/messages", response_model=schemas.MessagePage, tags=["messages"], summary="Messages stored by `message` tasks")
def list_messages(
    svc: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> dict[str, Any]:
    messages, next_cursor = svc.messages.list(owner, limit=limit, cursor=cursor)
    return {"messages": [m.to_public() for m in messages], "total": len(messages), "next_cursor": next_cursor}


@router.get("/health", response_model=schemas.Health, tags=["health"], responses={503: {"model": schemas.Health}})
def health(svc: ServicesDep) -> Response:
    from ..domain.errors import DependencyUnavailableError

    checks: dict[str, str] = {}
    for label, probe in (("dynamodb", svc.repository.ping), ("sqs", svc.queue.ping)):
        try:
            probe()
            checks[label] = "ok"
        except DependencyUnavailableError as exc:
            checks[label] = f"unavailable: {exc.detail}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": "5"},
    )
