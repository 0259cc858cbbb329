"""StreamFunction: the SSE app behind the Lambda Function URL (Lambda Web Adapter + uvicorn).

Run with ``uvicorn taskrunner.entrypoints.stream:app``; the app builds its services on the
first request, not at import.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..bootstrap import Services, get_services
from ..domain.auth import AuthenticationError, StreamGrant
from ..domain.errors import DependencyUnavailableError, TaskNotFoundError
from .sse import follow_response, parse_last_event_id, wants_json


async def follow(request: Request) -> Response:
    services = request.app.state.services_provider()
    settings = services.settings
    task_id = request.path_params["task_id"]
    if len(task_id) > 100:
        return JSONResponse({"detail": f"task {task_id[:100]} not found"}, status_code=404)
    try:
        grant = await anyio.to_thread.run_sync(stream_grant, request, services, task_id)
        recheck = still_granted(request, services, grant)
        await anyio.to_thread.run_sync(recheck)
    except AuthenticationError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    except DependencyUnavailableError as exc:
        detail = f"{exc.dependency} is unavailable; try again"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
    try:
        task = await anyio.to_thread.run_sync(services.tasks.get, grant.owner, task_id)
    except TaskNotFoundError:
        return JSONResponse({"detail": f"task {task_id} not found"}, status_code=404)
    if wants_json(request.headers.get("accept", "")):
        return JSONResponse(task.to_public())

    async def authorize() -> None:
        await anyio.to_thread.run_sync(recheck)

    last = parse_last_event_id(request.headers.get("last-event-id") or request.query_params.get("last_event_id"))
    return follow_response(services.tasks, grant.owner, task, settings, last_event_id=last, authorize=authorize)


def stream_grant(request: Request, services: Services, task_id: str) -> StreamGrant:
    """The owner (and key id) named by a stream token bound to this task (query ``token`` or a
    Bearer token). API keys are accepted only where STREAM_ACCEPT_API_KEYS is set (the local
    runner, whose front serves the stream itself); on AWS the Function URL takes tokens only,
    which the API hands out after checking the key."""
    token = request.query_params.get("token")
    if token:
        return services.stream_tokens.grant(token, task_id)
    if services.authenticator is None:
        return StreamGrant(services.settings.default_owner)
    key = presented_key(request)
    if key and "." in key and not key.startswith("tr_"):
        return services.stream_tokens.grant(key, task_id)
    if not services.settings.stream_accept_api_keys:
        raise AuthenticationError("this endpoint takes the stream link's token (links.stream of the task)")
    identity = services.authenticator.identify(key)
    return StreamGrant(identity.owner, identity.key_id)


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = value.strip()
    return key or None


def still_granted(request: Request, services: Services, grant: StreamGrant) -> Callable[[], None]:
    """A (blocking, cached) check that the credentials behind the stream are still valid,
    raising AuthenticationError once they are not: an API key is authenticated again (the
    authenticator caches); a token's key id is looked up among the revoked keys (cached)."""
    key = presented_key(request)
    authenticator = services.authenticator
    if not request.query_params.get("token") and key and key.startswith("tr_") and authenticator is not None:
        raw_key = key

        def reauthenticate() -> None:
            authenticator.identify(raw_key)

        return reauthenticate
    check, key_id = services.revocation_check, grant.key_id
    if check is None or key_id is None:
        return lambda: None

    def active() -> None:
        check.ensure_active(key_id)

    return active


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
