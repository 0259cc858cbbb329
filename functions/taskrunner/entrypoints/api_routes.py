"""The HTTP routes. Each parses input, calls one service method and shapes the answer."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response, Security
from fastapi.responses import JSONResponse, RedirectResponse

from ..bootstrap import Services
from ..domain.errors import DependencyUnavailableError, PayloadTooLargeError, ThrottledError
from ..domain.models import Task, TaskStatus
from ..domain.submission import SubmitRequest, SubmitResult
from ..domain.views import TaskLinks, TaskPublic, public_task, to_json
from ..observability import logger
from . import api_schemas as schemas
from .api_docs import api_key_scheme
from .sse import follow_response, parse_last_event_id, wants_json

# Handlers are `async def` that call the (blocking) services directly: a Lambda execution
# environment serves one request at a time, so there is nothing to gain from thread hops.
router = APIRouter()
api = APIRouter(responses=schemas.COMMON_ERRORS)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: schemas.error("Unknown task (or another owner's)")}


async def services(request: Request) -> Services:
    provider = request.app.state.services_provider
    found: Services = provider()
    return found


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def current_owner(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    _documented: Annotated[str | None, Security(api_key_scheme)] = None,
) -> str:
    """The caller's owner id, from its API key; every /api route depends on it (and so the
    OpenAPI document names the key for each; the key is read by presented_key below)."""
    key_id = None
    if svc.authenticator is None:
        owner = svc.settings.default_owner
    else:
        identity = svc.authenticator.identify(presented_key(request))
        owner, key_id = identity.owner, identity.key_id
    if svc.rate_limiter is not None and not svc.rate_limiter.allow(owner):
        raise ThrottledError(f"too many requests for {owner}; slow down")
    request.state.owner = owner
    # stream links name the key they were issued for, so revoking the key ends them too
    request.state.key_id = key_id
    return owner


ServicesDep = Annotated[Services, Depends(services)]
OwnerDep = Annotated[str, Depends(current_owner)]


def _links(svc: Services, task: Task, request: Request) -> TaskLinks:
    base = f"/api/tasks/{task.task_id}"
    token = svc.stream_tokens.issue(task.task_id, task.owner, getattr(request.state, "key_id", None))
    stream = f"{svc.settings.stream_url}{base}" if svc.settings.stream_url else base
    return TaskLinks(self=base, state=f"{base}/state", stream=f"{stream}?token={token}", cancel=f"{base}/cancel")


def _public(task: Task, svc: Services | None = None, request: Request | None = None) -> dict[str, Any]:
    links = _links(svc, task, request) if svc is not None and request is not None else None
    public: dict[str, Any] = to_json(public_task(task, links))
    return public


@api.post(
    "/api/tasks",
    status_code=202,
    response_model=schemas.TaskAccepted,
    tags=["tasks"],
    summary="Submit a task",
    responses={
        400: schemas.error("The body is not valid JSON"),
        409: schemas.error("Idempotency-Key reused with another body"),
        413: schemas.error("Body or parameters too large"),
        422: schemas.error("Unknown task type (lists the known ones) or invalid fields"),
    },
)
async def submit_task(
    body: schemas.TaskCreate,
    raw: Request,
    response: Response,
    svc: ServicesDep,
    owner: OwnerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    if len(json.dumps(body.parameters, default=str)) > svc.settings.max_parameters_bytes:
        raise PayloadTooLargeError(f"parameters are larger than {svc.settings.max_parameters_bytes} bytes as JSON")
    request = SubmitRequest(
        name=body.name,
        parameters=body.parameters,
        callback_url=body.callback_url,
        delay_seconds=body.delay_seconds,
        max_attempts=body.max_attempts,
        timeout_seconds=body.timeout_seconds,
        metadata=body.metadata,
        priority=body.priority,
        max_runtime_seconds=body.max_runtime_seconds,
    )
    result = svc.tasks.submit(owner, request, idempotency_key=idempotency_key)
    return _accepted(result, svc, raw, response)


def _accepted(result: SubmitResult, svc: Services, raw: Request, response: Response) -> dict[str, Any]:
    task = result.task
    response.headers["Location"] = f"/api/tasks/{task.task_id}/state"
    if not result.created:
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "task_id": task.task_id,
        "status": task.status.value,
        "name": task.name,
        "created_at": task.created_at,
        "links": to_json(_links(svc, task, raw)),
        "message": "Task accepted" if result.created else "Task already accepted with this Idempotency-Key",
    }


@api.get(
    "/api/tasks",
    response_model=schemas.TaskPage,
    tags=["tasks"],
    summary="List tasks, newest first",
    responses={422: schemas.error("Invalid filter or cursor"), 304: {"description": "Unchanged (If-None-Match)"}},
)
async def list_tasks(
    request: Request,
    svc: ServicesDep,
    owner: OwnerDep,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this status.")] = None,
    active: Annotated[bool, Query(description="Only PENDING, RUNNING and RETRYING tasks.")] = False,
    name: Annotated[str | None, Query(max_length=100, description="Only tasks of this type.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    page = svc.tasks.list(owner, status=status, active=active, name=name, limit=limit, cursor=cursor)
    body = {"tasks": [_public(t) for t in page.items], "total": len(page.items), "next_cursor": page.cursor}
    # a poller (the dashboard, every second) sends the last ETag back: unchanged pages cost no body
    raw = json.dumps(schemas.TaskPage.model_validate(body).model_dump(mode="json"), separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


@api.get(
    "/api/tasks/{task_id}",
    tags=["tasks"],
    summary="Follow a task: Server-Sent Events (or JSON with Accept: application/json)",
    responses={
        200: {
            "content": {
                "text/event-stream": {},
                "application/json": {"schema": {"$ref": "#/components/schemas/TaskPublic"}},
            }
        },
        307: {"description": "On AWS: redirect to the streaming Function URL"},
        **NOT_FOUND,
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
    if wants_json(request.headers.get("accept", "")):
        return JSONResponse(_public(task, svc, request))
    settings = svc.settings
    if settings.stream_url:
        # On AWS the Function URL streams; the caller proved who it is here, so it gets a token.
        return RedirectResponse(_links(svc, task, request).stream, status_code=307)

    authenticator, key = svc.authenticator, presented_key(request)

    async def authorize() -> None:
        # the key is authenticated again (cached): a revoked key ends the stream it opened
        if authenticator is not None:
            await anyio.to_thread.run_sync(authenticator.identify, key)

    return follow_response(
        svc.tasks, owner, task, settings, last_event_id=parse_last_event_id(last_event_id), authorize=authorize
    )


@api.get(
    "/api/tasks/{task_id}/state",
    response_model=TaskPublic,
    tags=["tasks"],
    summary="The task's current state",
    responses=NOT_FOUND,
)
async def task_state(task_id: str, request: Request, svc: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return _public(svc.tasks.get(owner, task_id), svc, request)


@api.post(
    "/api/tasks/{task_id}/cancel",
    response_model=TaskPublic,
    tags=["tasks"],
    summary="Cancel a task",
    responses={**NOT_FOUND, 409: schemas.error("The task already ended")},
)
async def cancel_task(task_id: str, request: Request, svc: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return _public(svc.tasks.cancel(owner, task_id), svc, request)


@api.post(
    "/api/tasks/{task_id}/retry",
    status_code=202,
    response_model=schemas.TaskAccepted,
    tags=["tasks"],
    summary="Run a FAILED or CANCELLED task again, as a new task",
    description="The new task has the same type, parameters, callback, metadata, priority and limits, "
    "and `retry_of` names the old one. Send an `Idempotency-Key` to make the request safe to repeat.",
    responses={
        **NOT_FOUND,
        409: schemas.error("The task is not FAILED or CANCELLED, or Idempotency-Key reused with another request"),
        422: schemas.error("The old task's parameters or callback are no longer accepted"),
    },
)
async def retry_task(
    task_id: str,
    raw: Request,
    response: Response,
    svc: ServicesDep,
    owner: OwnerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    result = svc.tasks.retry(owner, task_id, idempotency_key=idempotency_key)
    return _accepted(result, svc, raw, response)


@api.get("/api/task-types", response_model=schemas.TaskTypeList, tags=["tasks"], summary="Registered task types")
async def task_types(svc: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    policy = svc.settings.policy
    return {
        "task_types": [
            {
                "name": t.name,
                "description": t.description,
                "queue": t.queue,
                "timeout_seconds": t.timeout_seconds,
                "checkpoints": t.checkpoints,
                "parameters_schema": t.parameters_schema(),
            }
            for t in svc.tasks.catalog.all()
        ],
        "limits": {
            "max_timeout_seconds": policy.max_timeout_seconds,
            "default_max_runtime_seconds": min(policy.default_max_runtime_seconds, policy.max_runtime_limit_seconds),
            "max_runtime_seconds": policy.max_runtime_limit_seconds,
            "checkpoint_max_bytes": policy.checkpoint_max_bytes,
            "result_max_bytes": policy.result_max_bytes,
        },
    }


@api.get(
    "/api/messages", response_model=schemas.MessagePage, tags=["messages"], summary="Messages stored by `message` tasks"
)
async def list_messages(
    svc: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> dict[str, Any]:
    messages, next_cursor = svc.messages.list(owner, limit=limit, cursor=cursor)
    return {"messages": [m.to_public() for m in messages], "total": len(messages), "next_cursor": next_cursor}


@api.get(
    "/api/callback-secret",
    response_model=schemas.CallbackSecret,
    tags=["callbacks"],
    summary="The secret that signs your callbacks (Standard Webhooks)",
)
async def callback_secret(svc: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return {
        "owner": owner,
        "signing_secret": svc.signing_secret_for(owner),
        "scheme": "Standard Webhooks (v1, HMAC-SHA256)",
    }


@router.get(
    "/health",
    response_model=schemas.Health,
    tags=["health"],
    responses={503: {"model": schemas.Health, "description": "A dependency is down"}},
)
async def health(svc: ServicesDep) -> Response:
    checks: dict[str, str] = {}
    for label, probe in (("dynamodb", svc.repository.ping), ("sqs", svc.queue.ping)):
        try:
            probe()
            checks[label] = "ok"
        except DependencyUnavailableError as exc:
            # /health is open to callers without a key: name the dependency and the kind of
            # failure, never its endpoint (botocore's messages carry the URL); the log has it all.
            cause = exc.__cause__
            checks[label] = f"unavailable ({type(cause).__name__})" if cause is not None else "unavailable"
            logger().warning("health check failed", extra={"dependency": label, "detail": exc.detail})
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": "5"},
    )


router.include_router(api)
