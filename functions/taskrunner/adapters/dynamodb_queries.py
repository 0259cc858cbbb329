"""The dashboard's read-only queries of the tasks table (see domain/monitor.py), bounded by
item counts and time, across the owner's index shards: a part of DynamoDbTaskRepository kept
apart from its writes."""

from __future__ import annotations

import builtins
import itertools
import time
from collections import Counter

from ..domain.models import (
    TERMINAL_STATUSES,
    Task,
    TaskStatus,
)
from .dynamodb_codec import item_to_task, s_attr
from .dynamodb_expressions import Expression
from .dynamodb_listing import TaskListing
from .dynamodb_shards import batch_get, merged

ACTIVE_COUNTS_SECONDS = 1.0  # how long one read of the active set counts the active statuses
CHART_FIELDS = "task_id, #status, #name, created_at, started_at, completed_at"


class MonitorQueries(TaskListing):
    """A base of DynamoDbTaskRepository (which sets ``_db`` and ``_table``)."""

    _active_counts: tuple[tuple[str, str], float, Counter[str], bool] | None = None

    def count_by_status(
        self, owner: str, status: TaskStatus, *, since: str | None, deadline: float
    ) -> tuple[int, bool]:
        """A terminal status: Select=COUNT on every ``by-owner-done`` shard (only the keys are
        read, no items sent), summed. An active one: the active keys (a small set), their
        statuses read in batches."""
        expression = Expression()
        range_condition = expression.compare("created_key", ">=", s_attr(since), hint="since") if since else ""
        if status.is_terminal:
            streams = self._owner_streams(
                owner,
                active=False,
                done_statuses=frozenset({status}),
                expression=expression,
                range_condition=range_condition,
                page=1000,
                select_count=True,
            )
            total = sum(int(answer.get("Count", 0)) for s in streams for answer in s.pages(deadline))
            return total, all(s.complete for s in streams)
        key = (owner, since or "")
        cached = self._active_counts
        if cached is None or cached[0] != key or time.monotonic() - cached[1] > ACTIVE_COUNTS_SECONDS:
            # the three active statuses of one stats request share one read of the active set
            streams = self._owner_streams(
                owner,
                active=True,
                done_statuses=frozenset(),
                expression=expression,
                range_condition=range_condition,
                page=1000,
            )
            ids = [item["task_id"]["S"] for s in streams for item in s.items(deadline)]
            items = batch_get(self._db, self._table, ids, projection="task_id, #status", names={"#status": "status"})
            counts = Counter(item["status"]["S"] for item in items.values())
            cached = (key, time.monotonic(), counts, all(s.complete for s in streams))
            self._active_counts = cached
        return cached[2][status.value], cached[3]

    def recent(self, owner: str, *, since: str, limit: int, deadline: float) -> tuple[builtins.list[Task], bool]:
        """The owner's tasks created since ``since``, newest first, only the fields the charts
        need."""
        expression = Expression()
        streams = self._owner_streams(
            owner,
            active=True,
            done_statuses=TERMINAL_STATUSES,
            expression=expression,
            range_condition=expression.compare("created_key", ">=", s_attr(since), hint="since"),
            page=min(limit, 500),
        )
        keys = list(itertools.islice(merged(streams, "created_key", deadline=deadline), limit + 1))
        more = len(keys) > limit
        keys = keys[:limit]
        items = batch_get(
            self._db,
            self._table,
            (k["task_id"]["S"] for k in keys),
            projection=CHART_FIELDS,
            names={"#status": "status", "#name": "name"},
        )
        tasks = [item_to_task(items[k["task_id"]["S"]]) for k in keys if k["task_id"]["S"] in items]
        return tasks, not more and all(s.complete for s in streams)

    def find_by_prefix(
        self, owner: str, prefix: str, *, max_items: int, deadline: float
    ) -> tuple[builtins.list[Task], int, bool]:
        """Tasks whose id starts with ``prefix`` among the owner's newest ``max_items`` (about:
        the newest ``max_items / shards`` of every shard)."""
        expression = Expression()
        streams = self._owner_streams(
            owner,
            active=True,
            done_statuses=TERMINAL_STATUSES,
            expression=expression,
            filters=[expression.begins_with("task_id", s_attr(prefix), hint="prefix")],
            page=max(1, -(-min(max_items, 1000 * 32) // 32)),
        )
        pages = [s.first_page() for s in streams]
        keys = sorted(
            (item for page in pages for item in page.get("Items", [])),
            key=lambda k: k["created_key"]["S"],
            reverse=True,
        )[:20]
        items = batch_get(self._db, self._table, (k["task_id"]["S"] for k in keys))
        found = [item_to_task(items[k["task_id"]["S"]]) for k in keys if k["task_id"]["S"] in items]
        looked = sum(int(page.get("ScannedCount", 0)) for page in pages)
        return found, looked, all(s.complete for s in streams)

    def oldest_in_status(self, owner: str, status: TaskStatus) -> Task | None:
        deadline = time.monotonic() + 1.0
        streams = self._owner_streams(
            owner,
            active=not status.is_terminal,
            done_statuses=frozenset({status}) if status.is_terminal else frozenset(),
            newest_first=False,
            page=25,
        )
        keys = merged(streams, "created_key", newest_first=False, deadline=deadline)
        while time.monotonic() < deadline:
            chunk = list(itertools.islice(keys, 25))
            if not chunk:
                return None
            items = batch_get(self._db, self._table, (k["task_id"]["S"] for k in chunk))
            for key in chunk:
                item = items.get(key["task_id"]["S"])
                if item is not None and item["status"]["S"] == status.value:
                    return item_to_task(item)
        return None
