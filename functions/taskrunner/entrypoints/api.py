"""ApiFunction: the FastAPI app, and the Lambda handler that runs it through Mangum.

Importing this module imports FastAPI and nothing of ours beyond what its own code needs:
the composition root, the routes and Mangum are imported when the first invocation builds
the app (tests/unit/test_cold_start.py keeps it so)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ..bootstrap import Services


def _detail(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors -> HTTP codes, in one place."""
    from ..domain import errors
    from ..domain.auth import AuthenticationError

    @app.exception_handler(AuthenticationError)
    async def _unauthenticated(_: Request, exc: AuthenticationError) -> JSONResponse:
        return _detail(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(errors.ThrottledError)
    async def _throttled(_: Request, exc: errors.ThrottledError) -> JSONResponse:
        return _detail(429, str(exc), {"Retry-After": "1"})

    @app.exception_handler(errors.PayloadTooLargeError)
    async def _too_large(_: Request, exc: errors.PayloadTooLargeError) -> JSONResponse:
        return _detail(413, str(exc))

    @app.exception_handler(errors.TaskNotFoundError)
    async def _not_found(_: Request, exc: errors.TaskNotFoundError) -> JSONResponse:
        return _detail(404, f"task {exc.task_id} not found")

    @app.exception_handler(errors.UnknownTaskTypeError)
    async def _unknown_type(_: Request, exc: errors.UnknownTaskTypeError) -> JSONResponse:
        return _detail(
            422,
            [{"loc": ["body", "name"], "msg": str(exc), "type": "unknown_task_type", "known_types": exc.known}],
        )

    @app.exception_handler(errors.InvalidParametersError)
    async def _bad_params(_: Request, exc: errors.InvalidParametersError) -> JSONResponse:
        return _detail(422, exc.errors)

    @app.exception_handler(errors.EgressDeniedError)
    async def _egress(_: Request, exc: errors.EgressDeniedError) -> JSONResponse:
        return _detail(422, [{"loc": ["body", "callback_url"], "msg": str(exc), "type": "url_not_allowed"}])

    @app.exception_handler(errors.InvalidCursorError)
    async def _cursor(_: Request, exc: errors.InvalidCursorError) -> JSONResponse:
        return _detail(422, [{"loc": ["query", "cursor"], "msg": str(exc), "type": "invalid_cursor"}])

    @app.exception_handler(errors.InvalidTransitionError)
    async def _conflict(_: Request, exc: errors.InvalidTransitionError) -> JSONResponse:
        return _detail(409, str(exc))

    @app.exception_handler(errors.IdempotencyConflictError)
    async def _idem(_: Request, exc: errors.IdempotencyConflictError) -> JSONResponse:
        return _detail(409, str(exc))

    @app.exception_handler(errors.ConditionFailedError)
    async def _busy(_: Request, exc: errors.ConditionFailedError) -> JSONResponse:
        return _detail(409, f"task {exc.task_id} is changing; try again", {"Retry-After": "1"})

    @app.exception_handler(errors.TaskAlreadyExistsError)
    async def _collision(_: Request, exc: errors.TaskAlreadyExistsError) -> JSONResponse:
        return _detail(503, "could not store the task; nothing was accepted, try again", {"Retry-After": "1"})

    @app.exception_handler(errors.DependencyUnavailableError)
    async def _unavailable(_: Request, exc: errors.DependencyUnavailableError) -> JSONResponse:
        return _detail(503, f"{exc.dependency} is unavailable; nothing was changed, try again", {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return _detail(400, "request body is not valid JSON")
        clean = [{"loc": list(p.get("loc", ())), "msg": p.get("msg", ""), "type": p.get("type", "")} for p in problems]
        return _detail(422, clean)


class BodyLimit:
    """413 for request bodies over the limit (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._too_large(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body is larger than {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(
    services_provider: Callable[[], Services] | None = None, *, docs: bool = True, max_body_bytes: int = 256 * 1024
) -> FastAPI:
    """The app; its services come from ``services_provider`` (the process's, by default)."""
    from ..bootstrap import get_services
    from .api_docs import router as docs_router
    from .api_metrics import router as metrics_router
    from .api_monitor import api as monitor_router
    from .api_routes import router
    from .dashboard import router as dashboard_router

    app = FastAPI(
        title="Task API",
        version="1.0.0",
        description="Submit long-running tasks, follow them live, get the result at a callback URL.",
        # /docs is served by api_docs (Swagger UI's assets from this API, not a CDN); no ReDoc
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.services_provider = services_provider or get_services
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(monitor_router)
    app.include_router(dashboard_router)
    app.include_router(metrics_router)
    if docs:
        app.include_router(docs_router)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


@functools.cache
def _adapter() -> Any:
    """The Mangum adapter around the app, built on the first invocation (not at import)."""
    from mangum import Mangum

    from ..config import get_settings

    settings = get_settings()
    app = create_app(docs=settings.docs_enabled, max_body_bytes=settings.max_body_bytes)
    return Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: API Gateway (HTTP API v2 or REST v1) events through Mangum."""
    from ..observability import run_handler

    result: dict[str, Any] = run_handler(_adapter(), event, context)
    return result
