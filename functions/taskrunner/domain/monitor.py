"""The operations monitor: counts by status, queue depths, throughput and latency per minute,
and task lookup by a short id. Read-only; every read is bounded in items and in time.

The stores answer through the small protocols below (DynamoDB and SQS adapters, in-memory fakes).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from .errors import TaskNotFoundError
from .models import Task, TaskStatus, iso, parse_iso
from .ports import Clock

# time ranges the dashboard and /api/stats accept (None: all time)
RANGES: dict[str, timedelta | None] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "all": None,
}
SHORT_ID_MIN = 6
FULL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{5,35}")


class InvalidQueryError(ValueError):
    """A monitor query parameter that cannot be served: 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class TaskStats(Protocol):
    def count_by_status(
        self, owner: str, status: TaskStatus, *, since: str | None, deadline: float
    ) -> tuple[int, bool]:
        """How many of ``owner``'s tasks in ``status`` were created at or after ``since``;
        the bool says whether the count is complete (False: cut off at ``deadline``)."""

    def recent(self, owner: str, *, since: str, limit: int, deadline: float) -> tuple[list[Task], bool]:
        """``owner``'s tasks created at or after ``since``, newest first, at most ``limit``."""

    def find_by_prefix(
        self, owner: str, prefix: str, *, max_items: int, deadline: float
    ) -> tuple[list[Task], int, bool]:
        """``owner``'s tasks whose id starts with ``prefix`` among the newest ``max_items``:
        (matches, items looked at, whether every task of the owner was looked at)."""

    def oldest_in_status(self, owner: str, status: TaskStatus) -> Task | None: ...


class QueueStats(Protocol):
    def depths(self) -> list[dict[str, Any]]:
        """Per queue: name, kind, visible, in_flight, delayed (SQS's approximate numbers)."""


@dataclasses.dataclass(frozen=True)
class MonitorLimits:
    count_seconds: float = 3.0  # all counts of one /api/stats answer
    series_items: int = 2000  # tasks read for the charts
    series_seconds: float = 3.0
    search_items: int = 5000  # tasks looked at for a short id
    search_seconds: float = 3.0


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return max(0.0, (parse_iso(end) - parse_iso(start)).total_seconds())
    except ValueError:
        return None


def since_for(range_name: str, now: datetime) -> str | None:
    if range_name not in RANGES:
        raise InvalidQueryError("range", f"range must be one of {', '.join(RANGES)}")
    span = RANGES[range_name]
    return iso(now - span) if span is not None else None


class MonitorService:
    def __init__(
        self,
        stats: TaskStats,
        queues: QueueStats | None,
        *,
        clock: Clock,
        limits: MonitorLimits | None = None,
    ) -> None:
        self._stats = stats
        self._queues = queues
        self._clock = clock
        self.limits = limits or MonitorLimits()

    def counts(self, owner: str, range_name: str = "all") -> dict[str, Any]:
        now = self._clock.now()
        since = since_for(range_name, now)
        deadline = self._clock.monotonic() + self.limits.count_seconds
        counts: dict[str, int] = {}
        complete = True
        for status in TaskStatus:
            counted, whole = self._stats.count_by_status(owner, status, since=since, deadline=deadline)
            counts[status.value] = counted
            complete = complete and whole
        oldest = self._stats.oldest_in_status(owner, TaskStatus.PENDING)
        return {
            "range": range_name,
            "since": since,
            "counts": counts,
            "total": sum(counts.values()),
            "complete": complete,
            "oldest_pending_seconds": _seconds(oldest.created_at, iso(now)) if oldest else None,
            "generated_at": iso(now),
        }

    def queues(self) -> dict[str, Any]:
        return {
            "queues": self._queues.depths() if self._queues is not None else [],
            "generated_at": iso(self._clock.now()),
        }

    def series(self, owner: str, minutes: int = 60) -> dict[str, Any]:
        now = self._clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = now - timedelta(minutes=minutes)
        deadline = self._clock.monotonic() + self.limits.series_seconds
        tasks, complete = self._stats.recent(owner, since=iso(start), limit=self.limits.series_items, deadline=deadline)
        buckets = [start + timedelta(minutes=i) for i in range(minutes)]
        ended: list[dict[str, int]] = [{"completed": 0, "failed": 0} for _ in buckets]
        runs: list[list[float]] = [[] for _ in buckets]
        waits: list[list[float]] = [[] for _ in buckets]

        def slot(stamp: str | None) -> int | None:
            if not stamp:
                return None
            try:
                index = int((parse_iso(stamp) - start).total_seconds() // 60)
            except ValueError:
                return None
            return index if 0 <= index < minutes else None

        for task in tasks:
            wait = _seconds(task.created_at, task.started_at)
            started = slot(task.started_at)
            if wait is not None and started is not None:
                waits[started].append(wait)
            if task.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED):
                continue
            finished = slot(task.completed_at)
            if finished is None:
                continue
            ended[finished]["completed" if task.status is TaskStatus.COMPLETED else "failed"] += 1
            run = _seconds(task.started_at, task.completed_at)
            if run is not None and task.status is TaskStatus.COMPLETED:
                runs[finished].append(run)
        return {
            "minutes": minutes,
            "since": iso(start),
            "until": iso(now),
            "sampled": len(tasks),
            "complete": complete,
            "t": [int(b.timestamp()) for b in buckets],
            "completed": [e["completed"] for e in ended],
            "failed": [e["failed"] for e in ended],
            "run_p50": [percentile(r, 50) for r in runs],
            "run_p95": [percentile(r, 95) for r in runs],
            "wait_p50": [percentile(w, 50) for w in waits],
            "wait_p95": [percentile(w, 95) for w in waits],
        }

    def search(self, owner: str, query: str, get: Callable[[str, str], Task]) -> dict[str, Any]:
        """``get(owner, task_id)`` answers a full id; a prefix of at least 6 characters is
        looked for among the owner's newest tasks."""
        wanted = query.strip().lower()
        if len(wanted) < SHORT_ID_MIN:
            raise InvalidQueryError("id", f"give the full task id or at least its first {SHORT_ID_MIN} characters")
        if FULL_ID.fullmatch(wanted):
            task: Task = get(owner, wanted)
            return {"query": wanted, "matches": [_brief(task)], "searched": 1, "complete": True}
        if not ID_PREFIX.fullmatch(wanted):
            raise InvalidQueryError("id", "a task id has only the characters 0-9, a-f and '-'")
        deadline = self._clock.monotonic() + self.limits.search_seconds
        found, searched, complete = self._stats.find_by_prefix(
            owner, wanted, max_items=self.limits.search_items, deadline=deadline
        )
        if not found:
            scope = "any of your tasks" if complete else f"your newest {searched} tasks"
            raise TaskNotFoundError(f"starting with {wanted!r} (looked at {scope})")
        return {"query": wanted, "matches": [_brief(t) for t in found], "searched": searched, "complete": complete}


def _brief(task: Task) -> dict[str, Any]:
    return {"task_id": task.task_id, "name": task.name, "status": task.status.value, "created_at": task.created_at}
