"""Server-Sent Events: the one parser of the CLI and the smoke test (infra/smoke.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class RawEvent:
    """One event as sent: its ``id:`` (text, None when absent), ``event:`` name and joined ``data:`` lines."""

    id: str | None
    event: str
    data: str


def raw_events(lines: Iterable[str]) -> Iterator[RawEvent]:
    """The events of a text/event-stream, one per blank line after ``data:``; comments and ``retry:`` skipped."""
    event_id: str | None = None
    name = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield RawEvent(event_id, name, "\n".join(data))
            event_id, name, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "id":
            event_id = value.strip()
        elif field == "event":
            name = value.strip() or "message"


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a task's stream: its numeric id and its JSON object."""

    id: int | None
    data: dict[str, Any]
    event: str = "message"


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events whose data is a JSON object; an id that is not a number is dropped, other data skipped."""
    for raw in raw_events(lines):
        try:
            payload = json.loads(raw.data)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        event_id: int | None
        try:
            event_id = int(raw.id) if raw.id is not None else None
        except ValueError:
            event_id = None
        yield Event(event_id, payload, raw.event)
