"""StreamFunction: the SSE app behind the Lambda Function URL (Lambda Web Adapter + uvicorn).

Run with ``uvicorn taskrunner.entrypoints.stream:app``; the app builds its services on the
first request, not at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..bootstrap import Services, get_services
from ..domain.auth import AuthenticationError
from .sse import parse_last_event_id, task_events


async def follow(request: Request) -> Response:
    services = request.app.state.services_provider()
    settings = services.settings
    task_id = request.path_params["task_id"]
    if len(task_id) > 100:
        return JSONResponse({"detail": f"task {task_id[:100]} not found"}, status_code=404)
    try:
        owner = await anyio.to_thread.run_sync(stream_owner, request, services, task_id)
    except AuthenticationError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    task = await anyio.to_thread.run_sync(services.repository.get, task_id)
    if task is None or task.owner != owner:
        return JSONResponse({"detail": f"task {task_id} not found"}, status_code=404)
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/event-stream" not in accept:
        return JSONResponse(task.to_public())

    async def load() -> Any:
        return await anyio.to_thread.run_sync(services.repository.get, task_id)

    last = parse_last_event_id(request.headers.get("last-event-id") or request.query_params.get("last_event_id"))
    events = task_events(
        load,
        task,
        last_event_id=last,
        poll_seconds=settings.stream_poll_seconds,
        heartbeat_seconds=settings.stream_heartbeat_seconds,
        max_seconds=settings.stream_max_seconds,
    )
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def stream_owner(request: Request, services: Services, task_id: str) -> str:
    """The owner named by a stream token bound to this task (query ``token`` or a Bearer
    token). API keys are accepted only where STREAM_ACCEPT_API_KEYS is set (the local runner,
    whose front serves the stream itself); on AWS the Function URL takes tokens only, which the
    API hands out after checking the key."""
    token = request.query_params.get("token")
    if token:
        return services.stream_tokens.verify(token, task_id)
    if services.authenticator is None:
        return services.settings.default_owner
    key = request.headers.get("x-api-key")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = value.strip()
        if "." in key and not key.startswith("tr_"):
            return services.stream_tokens.verify(key, task_id)
    if not services.settings.stream_accept_api_keys:
        raise AuthenticationError("this endpoint takes the stream link's token (links.stream of the task)")
    return services.authenticator.owner_for(key)


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_stream_app(services_provider: Callable[[], Services] = get_services) -> Starlette:
    stream_app = Starlette(
        routes=[
            Route("/api/tasks/{task_id}", follow, methods=["GET"]),
            Route("/api/tasks/{task_id}/stream", follow, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    stream_app.state.services_provider = services_provider
    return stream_app


app = create_stream_app()
