"""Server-Sent Events of a task's state, shared by the stream function and the API app."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from ..domain.auth import AuthenticationError
from ..domain.models import Task


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
