"""Server-Sent Events of a task's state, shared by the stream function and the API app."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse

from ..config import Settings
from ..domain.auth import AuthenticationError
from ..domain.errors import TaskNotFoundError
from ..domain.models import Task
from ..domain.submission import TaskService

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def follow_response(
    tasks: TaskService,
    owner: str,
    first: Task,
    settings: Settings,
    *,
    last_event_id: int | None,
    authorize: Callable[[], Awaitable[None]] | None,
) -> StreamingResponse:
    """The event stream of ``owner``'s task ``first`` (the API's and the stream function's):
    read through the use case, so the owner is checked at every poll too."""

    async def load() -> Task | None:
        try:
            return await anyio.to_thread.run_sync(tasks.get, owner, first.task_id)
        except TaskNotFoundError:
            return None  # gone: the stream ends

    events = task_events(
        load,
        first,
        last_event_id=last_event_id,
        poll_seconds=settings.stream_poll_seconds,
        heartbeat_seconds=settings.stream_heartbeat_seconds,
        max_seconds=settings.stream_max_seconds,
        authorize=authorize,
    )
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def wants_json(accept: str) -> bool:
    """A follow request answered with the task's state as JSON instead of its event stream:
    the client accepts JSON and not text/event-stream."""
    return "application/json" in accept and "text/event-stream" not in accept


def format_event(task: Task) -> str:
    data = json.dumps(task.to_public(), separators=(", ", ": "), default=str)
    return f"id: {task.version}\ndata: {data}\n\n"


async def task_events(
    load: Callable[[], Awaitable[Task | None]],
    first: Task,
    *,
    last_event_id: int | None = None,
    poll_seconds: float = 0.25,
    heartbeat_seconds: float = 5.0,
    max_seconds: float = 900.0,
    authorize: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[str]:
    """Yield an event on every change of the task, its state again every heartbeat, and stop
    after the terminal event or at ``max_seconds`` (the client resumes with Last-Event-ID).

    ``authorize`` runs before every poll (it caches, so it is cheap) and raises
    AuthenticationError once the credentials behind the stream are revoked: the stream then
    ends with an ``unauthorized`` event (a reconnect gets 401)."""
    started = time.monotonic()
    yield "retry: 1000\n\n"
    task: Task | None = first
    sent_version = last_event_id
    last_sent = started if last_event_id is not None else 0.0
    while task is not None:
        now = time.monotonic()
        if sent_version is None or task.version > sent_version or now - last_sent >= heartbeat_seconds:
            yield format_event(task)
            sent_version = task.version
            last_sent = now
        if task.is_terminal:
            return
        if now - started >= max_seconds:
            yield ": stream time limit reached; reconnect with Last-Event-ID to resume\n\n"
            return
        await anyio.sleep(poll_seconds)
        if authorize is not None:
            try:
                await authorize()
            except AuthenticationError as exc:
                yield unauthorized_event(str(exc))
                return
        task = await load()


def unauthorized_event(detail: str) -> str:
    return f"event: unauthorized\ndata: {json.dumps({'status': 401, 'detail': detail})}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
