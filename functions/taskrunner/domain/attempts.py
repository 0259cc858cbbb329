"""One attempt of a task, as recorded in its ``attempt_history``. Pure: no I/O.

An entry is bounded (``ENTRY_MAX_BYTES`` as JSON) and carries no secrets: the traceback is
the last ``TRACEBACK_FRAMES`` frames as text (file, line, function, source line; never frame
locals or the environment) and anything that looks like an API key (``tr_...``) or a signing
secret (``whsec_...``) is replaced by a marker, in the message and the traceback alike.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import traceback as tb
from pathlib import PurePath
from typing import Any

from . import jsonsafe

TRACEBACK_FRAMES = 8
LINE_MAX_CHARS = 240
MESSAGE_MAX_CHARS = 1000
TYPE_MAX_CHARS = 200
ENTRY_MAX_BYTES = 4096

_SECRET = re.compile(r"(?<![A-Za-z0-9])(tr|whsec)_[A-Za-z0-9_\-+/=]{4,}")


class AttemptOutcome(enum.StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"  # failed; another attempt follows
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"  # stopped by timeout_seconds, the invocation's end or max_runtime_seconds
    LOST = "LOST"  # its worker vanished; a later claim took the task over once the lease ran out


def scrub(text: str) -> str:
    """``text`` with key- and secret-like tokens replaced by ``<prefix>_[redacted]``."""
    return _SECRET.sub(lambda m: f"{m.group(1)}_[redacted]", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: str, limit: int) -> str:
    return _clip(scrub(jsonsafe.printable(text)), limit)


def traceback_lines(exc: BaseException | None) -> list[str]:
    """The last frames of ``exc``'s traceback, one bounded line each, oldest first."""
    if exc is None or exc.__traceback__ is None:
        return []
    lines = []
    for frame in tb.extract_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]:
        where = "/".join(PurePath(frame.filename).parts[-2:])
        line = f"{where}:{frame.lineno} in {frame.name}"
        if frame.line:
            line += f": {frame.line.strip()}"
        lines.append(clean(line, LINE_MAX_CHARS))
    return lines


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt: from the claim that started it to the write that recorded its outcome
    (a hand-over between segments does not end it)."""

    number: int
    outcome: AttemptOutcome
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    segments: int | None = None  # the task's segment count when the attempt ended
    error_type: str | None = None
    message: str | None = None
    traceback: tuple[str, ...] = ()

    @classmethod
    def ended(
        cls,
        number: int,
        outcome: AttemptOutcome,
        *,
        started_at: str | None,
        ended_at: str | None,
        duration_ms: int | None,
        segments: int | None,
        error_type: str | None = None,
        message: str | None = None,
        exc: BaseException | None = None,
    ) -> Attempt:
        """An entry made bounded and scrubbed: the traceback loses its oldest lines first."""
        entry = cls(
            number=number,
            outcome=outcome,
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=None if duration_ms is None else max(0, duration_ms),
            segments=segments,
            error_type=None if error_type is None else clean(error_type, TYPE_MAX_CHARS),
            message=None if message is None else clean(message, MESSAGE_MAX_CHARS),
            traceback=tuple(traceback_lines(exc)),
        )
        while entry.traceback and entry.size() > ENTRY_MAX_BYTES:
            entry = dataclasses.replace(entry, traceback=entry.traceback[1:])
        return entry

    def size(self) -> int:
        return len(json.dumps(self.to_dict(), separators=(",", ":")).encode())

    def to_dict(self) -> dict[str, Any]:
        error = None
        if self.error_type is not None or self.message is not None:
            error = {
                "type": clean(self.error_type or "", TYPE_MAX_CHARS),
                "message": clean(self.message or "", MESSAGE_MAX_CHARS),
                "traceback": [clean(line, LINE_MAX_CHARS) for line in self.traceback[-TRACEBACK_FRAMES:]],
            }
        return {
            "attempt": self.number,
            "outcome": self.outcome.value,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": self.duration_ms,
            "segments": self.segments,
            "error": error,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Attempt | None:
        """An entry as stored (``to_dict``); None for one that cannot be read."""
        if not isinstance(raw, dict):
            return None
        try:
            error = raw.get("error") or {}
            lines = error.get("traceback") or []
            return cls(
                number=int(raw["attempt"]),
                outcome=AttemptOutcome(raw["outcome"]),
                started_at=_opt_str(raw.get("started_at")),
                ended_at=_opt_str(raw.get("ended_at")),
                duration_ms=None if raw.get("duration_ms") is None else int(raw["duration_ms"]),
                segments=None if raw.get("segments") is None else int(raw["segments"]),
                error_type=_opt_str(error.get("type")) if error else None,
                message=_opt_str(error.get("message")) if error else None,
                traceback=tuple(str(line) for line in lines if isinstance(line, str)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def history_from_json(raw: Any) -> tuple[Attempt, ...]:
    if not isinstance(raw, list):
        return ()
    entries = (Attempt.from_dict(item) for item in raw)
    return tuple(e for e in entries if e is not None)
