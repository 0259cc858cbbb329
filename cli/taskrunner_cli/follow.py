"""Following a task's event stream to its end, across the stream's time limit and worker segments."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .client import ApiError, Client, UnreachableError
from .display import TERMINAL, Display


def follow(
    client: Client,
    task: Mapping[str, Any],
    display: Display,
    *,
    max_failures: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Follow a task's stream until it ends, drawing its progress; its final state.

    The service ends a stream after its time limit (about 900 s) with a comment line, so a
    task that runs for hours over several worker invocations is followed over many streams:
    each reconnect sends Last-Event-ID (the last event's id) and so misses nothing, and asks
    for a fresh stream link (a new token) when the old one is refused. Only streams that end
    or break without a single event count towards ``max_failures``."""
    task_id = str(task["task_id"])
    links = task.get("links") or {}
    link = links.get("stream") if isinstance(links, dict) else None
    if not link:
        link = client.state(task_id)["links"]["stream"]
    last_id: int | None = None
    failures = 0
    try:
        while True:
            try:
                received = False
                for event in client.events(link, last_id):
                    if event.event == "unauthorized":
                        raise ApiError(int(event.data.get("status") or 401), event.data.get("detail", "unauthorized"))
                    received = True
                    failures = 0
                    if event.id is not None:
                        last_id = event.id
                    display.update(event.data)
                    if event.data.get("status") in TERMINAL:
                        return dict(event.data)
                # The stream ended before the task did (its time limit, a proxy): where is the task?
                current = client.state(task_id)
                display.update(current)
                if current.get("status") in TERMINAL:
                    return current
                link = current["links"]["stream"]
                if not received:
                    failures += 1
                    if failures > max_failures:
                        raise UnreachableError(f"the stream of task {task_id} keeps ending without news")
                    sleep(min(5.0, 0.5 * 2**failures))
            except ApiError as exc:
                if exc.status not in (401, 403) or failures >= max_failures:
                    raise
                failures += 1
                link = client.state(task_id)["links"]["stream"]  # the token expired: a fresh one
            except UnreachableError:
                failures += 1
                if failures > max_failures:
                    raise
                sleep(min(5.0, 0.5 * 2**failures))
    finally:
        display.finish()
