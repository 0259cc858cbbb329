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
from typing import TYPE_CHECKING, Any

from . import jsonsafe
from .errors import MaxRuntimeExceededError, TaskTimeoutError

if TYPE_CHECKING:
    from .models import Task, TaskError

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


def _ms_between(start: str | None, end: str | None) -> int | None:
    from .models import parse_iso  # models imports this module

    if not start or not end:
        return None
    try:
        return round((parse_iso(end) - parse_iso(start)).total_seconds() * 1000)
    except ValueError:
        return None


def outcome_for(exc: BaseException | None, outcome: AttemptOutcome) -> AttemptOutcome:
    if isinstance(exc, (TaskTimeoutError, MaxRuntimeExceededError)):
        return AttemptOutcome.TIMED_OUT
    return outcome


def attempt_entry(
    task: Task,
    outcome: AttemptOutcome,
    now: str,
    *,
    error: TaskError | None = None,
    exc: BaseException | None = None,
) -> Attempt:
    """The entry of ``task``'s current attempt (the one its claim started), ending ``now``."""
    started = task.attempt_started_at or (task.started_at if task.attempts == 1 else None)
    return Attempt.ended(
        task.attempts,
        outcome,
        started_at=started,
        ended_at=now,
        duration_ms=_ms_between(started, now),
        segments=task.segments,
        error_type=error.type if error else None,
        message=error.message if error else None,
        exc=exc,
    )


def attempt_history(task: Task, limit: int, entry: Attempt | None = None) -> tuple[Attempt, ...]:
    """``task``'s history, with an entry for each earlier attempt that ended without one (its
    worker vanished; this attempt's claim took the task over once the lease had run out: LOST),
    then ``entry``; the last ``limit`` entries."""
    entries = list(task.attempt_history)
    last = max((e.number for e in entries), default=0)
    # the claim kept the start of the attempt it replaced: unknown (None), that attempt ended
    # before attempts were recorded, and nothing is made up for it
    missing = range(last + 1, task.attempts) if task.prior_attempt_started_at else range(0)
    for number in missing:
        latest = number == task.attempts - 1  # the one whose start the claim kept
        started = task.prior_attempt_started_at if latest else None
        ended = task.attempt_started_at if latest else None
        entries.append(
            Attempt.ended(
                number,
                AttemptOutcome.LOST,
                started_at=started,
                ended_at=ended,
                duration_ms=_ms_between(started, ended),
                segments=task.segments - 1 if latest else None,
                error_type="WorkerLost",
                message="the worker stopped without recording an outcome; the task was claimed again "
                "once its lease had run out",
            )
        )
    if entry is not None:
        entries.append(entry)
    return tuple(entries[-max(1, limit) :])
