"""A tenant's task list and the reconciler's due tasks, read across the index shards (see
dynamodb_shards.py): a part of DynamoDbTaskRepository kept apart from its writes.

A list page merges ``by-owner-active`` and ``by-owner-done`` (16 shards each), newest first
by ``created_key``; its cursor is the owner and the last ``created_key`` returned, and the
next page asks every shard for the keys below it. A task that ends between two pages moves
from one index to the other with the same ``created_key``: it is on the side of the cursor
it was, so no page shows it twice and none skips it. Within a page the active shards are
read before the done ones, so a task ending during the read is in one or both (shown once).
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Iterable
from typing import Any

from ..domain.errors import InvalidCursorError
from ..domain.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Task, TaskPage, TaskStatus
from .dynamodb_codec import decode_cursor, encode_cursor, item_to_task, s_attr
from .dynamodb_expressions import Expression
from .dynamodb_shards import (
    ACTIVE_INDEX,
    DONE_INDEX,
    DUE_INDEX,
    DUE_SHARDS,
    OWNER_SHARDS,
    ShardStream,
    batch_get,
    due_shard_pk,
    merged,
    owner_shard_pk,
    sharded_query,
)

CURSOR_FIELDS = ("owner", "created_key")


class TaskListing:
    """Mixed into DynamoDbTaskRepository (which sets ``_db`` and ``_table``)."""

    _db: Any
    _table: str

    def _owner_streams(
        self,
        owner: str,
        *,
        active: bool,
        done_statuses: frozenset[TaskStatus],
        expression: Expression | None = None,
        range_condition: str = "",
        filters: builtins.list[str] | None = None,
        newest_first: bool = True,
        page: int = 100,
        select_count: bool = False,
    ) -> builtins.list[ShardStream]:
        """The shard queries of the owner's indexes: ``by-owner-active`` if ``active``, then
        ``by-owner-done`` filtered to ``done_statuses`` (none: not queried). ``range_condition``
        and ``filters`` are written with ``expression``'s placeholders."""
        expression = expression or Expression()
        streams: builtins.list[ShardStream] = []
        common: dict[str, Any] = {
            "table": self._table,
            "range_condition": range_condition,
            "newest_first": newest_first,
            "page": page,
            "select_count": select_count,
        }
        pks = [owner_shard_pk(owner, shard) for shard in range(OWNER_SHARDS)]

        def query(index: str, pk_name: str, expr: Expression, where: builtins.list[str]) -> builtins.list[ShardStream]:
            return sharded_query(
                self._db,
                index=index,
                pk_name=pk_name,
                pk_values=pks,
                names=expr.names,
                values=expr.values,
                filter_expression=" AND ".join(where),
                **common,
            )

        if active:
            streams += query(ACTIVE_INDEX, "active_pk", expression, filters or [])
        if done_statuses:
            done, done_filters = expression.copy(), list(filters or [])
            if done_statuses != TERMINAL_STATUSES:
                wanted = [s_attr(status.value) for status in sorted(done_statuses)]
                done_filters.append(done.is_in("status", wanted, hint="done"))
            streams += query(DONE_INDEX, "done_pk", done, done_filters)
        return streams

    def list(
        self,
        owner: str,
        *,
        statuses: Iterable[TaskStatus] | None,
        name: str | None,
        limit: int,
        cursor: str | None,
    ) -> TaskPage:
        wanted = frozenset(statuses or ())
        expression = Expression()
        range_condition = ""
        if cursor:
            start = decode_cursor(cursor, CURSOR_FIELDS)
            if start["owner"]["S"] != owner:
                raise InvalidCursorError("cursor is not one this API returned")
            range_condition = expression.compare("created_key", "<", start["created_key"], hint="before")
        filters = [expression.equals("name", s_attr(name))] if name else []
        streams = self._owner_streams(
            owner,
            active=not wanted or bool(wanted & ACTIVE_STATUSES),
            done_statuses=wanted & TERMINAL_STATUSES if wanted else TERMINAL_STATUSES,
            expression=expression,
            range_condition=range_condition,
            filters=filters,
            page=limit + 1 if not (filters or wanted) else max(limit * 2, 25),
        )
        keys = merged(streams, "created_key")
        found: builtins.list[tuple[str, Task]] = []
        while len(found) <= limit:
            chunk = list(itertools.islice(keys, limit + 1 - len(found)))
            if not chunk:
                break
            items = batch_get(self._db, self._table, (k["task_id"]["S"] for k in chunk))
            for key in chunk:
                item = items.get(key["task_id"]["S"])
                if item is None:
                    continue  # expired since the index was read
                task = item_to_task(item)
                # an active index's key says nothing of the status: the item does
                if (not wanted or task.status in wanted) and (not name or task.name == name):
                    found.append((key["created_key"]["S"], task))
        page = found[:limit]
        next_cursor = None
        if len(found) > limit and page:
            next_cursor = encode_cursor({"owner": s_attr(owner), "created_key": s_attr(page[-1][0])})
        return TaskPage(items=[task for _, task in page], cursor=next_cursor)

    def due(self, before: str, limit: int) -> builtins.list[Task]:
        """Active tasks whose ``due_at`` has passed, the most overdue first: every shard of
        ``by-due`` asked for its ``limit`` first, merged, then the items read in batches."""
        expression = Expression()
        streams = sharded_query(
            self._db,
            table=self._table,
            index=DUE_INDEX,
            pk_name="sweep_pk",
            pk_values=[due_shard_pk(shard) for shard in range(DUE_SHARDS)],
            range_condition=expression.compare("due_at", "<", s_attr(before), hint="before"),
            names=expression.names,
            values=expression.values,
            newest_first=False,
            page=limit,
        )
        keys = list(itertools.islice(merged(streams, "due_at", newest_first=False), limit))
        items = batch_get(self._db, self._table, (k["task_id"]["S"] for k in keys), consistent=True)
        tasks = []
        for key in keys:
            item = items.get(key["task_id"]["S"])
            if item is not None:
                task = item_to_task(item)
                if not task.is_terminal:
                    tasks.append(task)
        return tasks
