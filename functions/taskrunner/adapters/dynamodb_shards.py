"""Sharded index keys of the tasks table, and reads across the shards.

A DynamoDB partition key value takes about 1,000 writes/s. The design's load is 10,000
tasks/s overall, one tenant at 5,000 tasks/s:
- ``by-owner-active`` (2 writes per task: enters at submit, leaves at the terminal write) and
  ``by-owner-done`` (1 write: enters at the terminal write): 5,000 x 2 / 16 = 625 writes/s on a
  shard of the busiest tenant, so ``OWNER_SHARDS = 16``;
- ``by-due`` (2 writes per short task: enters at submit, leaves at the terminal write; more
  for a task the reconciler or a checkpoint moves): 10,000 x 2 / 64 = 312 writes/s per
  shard, room for 3x as many moves, so ``DUE_SHARDS = 64``.
A task's shard is a hash of its id: stable (every write of a task goes to one shard) and
uniform. A read of an index queries every shard concurrently and merges the answers.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..domain.errors import DependencyUnavailableError
from .aws import translated

OWNER_SHARDS = 16
DUE_SHARDS = 64
ACTIVE_INDEX = "by-owner-active"
DONE_INDEX = "by-owner-done"
DUE_INDEX = "by-due"
BATCH_GET_MAX = 100  # keys per BatchGetItem call (DynamoDB's limit)
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dynamodb-shards")


def s_attr(value: str) -> dict[str, str]:
    return {"S": value}


def shard_of(task_id: str, shards: int) -> int:
    """The task's shard among ``shards``: the same for every write of the task."""
    return int(hashlib.blake2b(task_id.encode(), digest_size=4).hexdigest(), 16) % shards


def owner_pk(owner: str, task_id: str) -> str:
    """``active_pk`` while the task is active, ``done_pk`` once it is terminal."""
    return owner_shard_pk(owner, shard_of(task_id, OWNER_SHARDS))


def owner_shard_pk(owner: str, shard: int) -> str:
    return f"{owner}#{shard:02d}"


def due_pk(task_id: str) -> str:
    """``sweep_pk``, the partition of the task in ``by-due`` while it is active."""
    return due_shard_pk(shard_of(task_id, DUE_SHARDS))


def due_shard_pk(shard: int) -> str:
    return f"ACTIVE#{shard:02d}"


def concurrently(calls: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run the calls (one per shard) on the shared pool; their answers in order."""
    futures = [_POOL.submit(call) for call in calls]
    return [f.result() for f in futures]


class ShardStream:
    """One shard's query, page by page: its items in the index's order, the first page fetched
    in advance (``prefetch``), the next ones when the merge reaches them."""

    def __init__(self, db: Any, kwargs: dict[str, Any], pk_value: str) -> None:
        self._db = db
        self._kwargs = kwargs
        self.pk_value = pk_value
        self.scanned = 0
        self.complete = False
        self._first: dict[str, Any] | None = None

    def _query(self, start: dict[str, Any] | None) -> dict[str, Any]:
        kwargs = dict(self._kwargs)
        kwargs["ExpressionAttributeValues"] = {**kwargs["ExpressionAttributeValues"], ":pk": s_attr(self.pk_value)}
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        with translated("DynamoDB"):
            answer: dict[str, Any] = self._db.query(**kwargs)
        self.scanned += int(answer.get("ScannedCount", 0))
        return answer

    def prefetch(self) -> ShardStream:
        self._first = self._query(None)
        return self

    def first_page(self) -> dict[str, Any]:
        if self._first is None:
            self._first = self._query(None)
        self.complete = "LastEvaluatedKey" not in self._first
        return self._first

    def pages(self, deadline: float | None = None) -> Iterator[dict[str, Any]]:
        """The answers, until the query ends or the monotonic ``deadline`` has passed."""
        answer = self.first_page()
        while True:
            yield answer
            start = answer.get("LastEvaluatedKey")
            if start is None:
                self.complete = True
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            answer = self._query(start)

    def items(self, deadline: float | None = None) -> Iterator[dict[str, Any]]:
        for answer in self.pages(deadline):
            yield from answer.get("Items", [])


def sharded_query(
    db: Any,
    *,
    table: str,
    index: str,
    pk_name: str,
    pk_values: Iterable[str],
    range_condition: str = "",
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    filter_expression: str = "",
    newest_first: bool = True,
    page: int = 100,
    select_count: bool = False,
) -> list[ShardStream]:
    """One stream per shard, their first pages queried concurrently."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": "#pk = :pk" + (f" AND {range_condition}" if range_condition else ""),
        "ExpressionAttributeNames": {"#pk": pk_name, **(names or {})},
        "ExpressionAttributeValues": dict(values or {}),
        "ScanIndexForward": not newest_first,
        "Limit": page,
    }
    if filter_expression:
        kwargs["FilterExpression"] = filter_expression
    if select_count:
        kwargs["Select"] = "COUNT"
    streams = [ShardStream(db, kwargs, pk) for pk in pk_values]
    return concurrently(s.prefetch for s in streams)


def merged(
    streams: Iterable[ShardStream], sort_key: str, *, newest_first: bool = True, deadline: float | None = None
) -> Iterator[dict[str, Any]]:
    """The streams' items in one order (each stream is already in it), without repeats of a
    task (a task moving between two indexes during the read can be in both)."""
    seen: set[str] = set()
    for item in heapq.merge(
        *(s.items(deadline) for s in streams), key=lambda i: i[sort_key]["S"], reverse=newest_first
    ):
        task_id = item["task_id"]["S"]
        if task_id not in seen:
            seen.add(task_id)
            yield item


def batch_get(
    db: Any,
    table: str,
    task_ids: Iterable[str],
    *,
    projection: str = "",
    names: Mapping[str, str] | None = None,
    consistent: bool = False,
) -> dict[str, dict[str, Any]]:
    """The items of these tasks by id (those that exist), ``BATCH_GET_MAX`` keys per call,
    unprocessed keys asked again with a short backoff."""
    ids = list(dict.fromkeys(task_ids))
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), BATCH_GET_MAX):
        request: dict[str, Any] = {"Keys": [{"task_id": s_attr(t)} for t in ids[i : i + BATCH_GET_MAX]]}
        if consistent:
            request["ConsistentRead"] = True
        if projection:
            request["ProjectionExpression"] = projection
            if names:
                request["ExpressionAttributeNames"] = dict(names)
        pending: dict[str, Any] | None = {table: request}
        for attempt in range(8):
            if not pending:
                break
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 1.0))
            with translated("DynamoDB"):
                answer = db.batch_get_item(RequestItems=pending)
            for item in answer.get("Responses", {}).get(table, []):
                found[item["task_id"]["S"]] = item
            pending = answer.get("UnprocessedKeys") or None
        if pending:
            raise DependencyUnavailableError("DynamoDB", "BatchGetItem left keys unprocessed")
    return found
