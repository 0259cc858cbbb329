"""Server-Sent Events: the one parser of the CLI, the smoke test (infra/smoke.py), the tests'
stack helpers (tests/support/stack.py) and the benchmarks (bench/stack.py)."""

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
    """The events of a text/event-stream, one per blank line after ``data:``; comments and ``retry:`` skipped.
    Lines may keep their ending (``\\n``, ``\\r\\n``), as a file or a socket's readline gives them."""
    event_id: str | None = None
    name = "message"
    data: list[str] = []
    for ended in lines:
        line = ended.rstrip("\r\n")
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


def decode(raw: RawEvent) -> Event:
    """The event's numeric id and JSON object; ValueError when the data is not a JSON object or
    the id not a number (for readers that must fail on a malformed stream)."""
    payload = json.loads(raw.data)
    if not isinstance(payload, dict):
        raise ValueError(f"an event's data is not a JSON object: {raw.data[:120]!r}")
    return Event(int(raw.id) if raw.id is not None else None, payload, raw.event)


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events whose data is a JSON object; an id that is not a number is dropped, other data skipped."""
    for raw in raw_events(lines):
        numbered = raw if raw.id is None or _is_number(raw.id) else dataclasses.replace(raw, id=None)
        try:
            event = decode(numbered)
        except ValueError:
            continue
        yield event


def _is_number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
