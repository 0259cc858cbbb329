"""The dashboard's read-only queries of the tasks table (see domain/monitor.py), bounded by
item counts and time: a part of DynamoDbTaskRepository kept apart from its writes."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable
from typing import Any

from ..domain.models import (
    Task,
    TaskStatus,
)
from .aws import translated
from .dynamodb_codec import item_to_task, s_attr


class MonitorQueries:
    """Mixed into DynamoDbTaskRepository (which sets ``_db`` and ``_table``)."""

    _db: Any
    _table: str

    # -- monitor reads (bounded: item and time limits; see domain/monitor.py) -------------
    def _query_pages(self, deadline: float, max_pages: int, **kwargs: Any) -> Iterable[dict[str, Any]]:
        """The pages of one query, until it ends, ``max_pages`` or the monotonic ``deadline``."""
        start: dict[str, Any] | None = None
        for _ in range(max_pages):
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            with translated("DynamoDB"):
                answer: dict[str, Any] = self._db.query(TableName=self._table, **kwargs)
            yield answer
            start = answer.get("LastEvaluatedKey")
            if start is None or time.monotonic() >= deadline:
                return

    def count_by_status(
        self, owner: str, status: TaskStatus, *, since: str | None, deadline: float
    ) -> tuple[int, bool]:
        """Select=COUNT on ``by-owner-status``: only the matching keys are read, no items sent."""
        values: dict[str, Any] = {":owner": s_attr(owner), ":lo": s_attr(f"{status.value}#{since or ''}")}
        # '$' sorts right after '#': every key of this status is below it
        values[":hi"] = s_attr(f"{status.value}$")
        total, complete = 0, False
        for answer in self._query_pages(
            deadline,
            200,
            IndexName="by-owner-status",
            KeyConditionExpression="#owner = :owner AND #sk BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#owner": "owner", "#sk": "status_key"},
            ExpressionAttributeValues=values,
            Select="COUNT",
        ):
            total += int(answer.get("Count", 0))
            complete = "LastEvaluatedKey" not in answer
        return total, complete

    def recent(self, owner: str, *, since: str, limit: int, deadline: float) -> tuple[builtins.list[Task], bool]:
        """The owner's tasks created since ``since``, newest first (``by-owner``), only the fields
        the charts need."""
        tasks: builtins.list[Task] = []
        complete = False
        for answer in self._query_pages(
            deadline,
            100,
            IndexName="by-owner",
            KeyConditionExpression="#owner = :owner AND #ck >= :since",
            ExpressionAttributeNames={
                "#owner": "owner",
                "#ck": "created_key",
                "#status": "status",
                "#name": "name",
            },
            ExpressionAttributeValues={":owner": s_attr(owner), ":since": s_attr(since)},
            ProjectionExpression="task_id, #status, #name, created_at, started_at, completed_at",
            ScanIndexForward=False,
            Limit=min(limit, 500),
        ):
            for raw in answer.get("Items", []):
                if len(tasks) == limit:
                    return tasks, False
                tasks.append(item_to_task(raw))
            complete = "LastEvaluatedKey" not in answer
        return tasks, complete

    def find_by_prefix(
        self, owner: str, prefix: str, *, max_items: int, deadline: float
    ) -> tuple[builtins.list[Task], int, bool]:
        """Tasks whose id starts with ``prefix`` among the owner's newest ``max_items``."""
        found: builtins.list[Task] = []
        looked, complete = 0, False
        for answer in self._query_pages(
            deadline,
            100,
            IndexName="by-owner",
            KeyConditionExpression="#owner = :owner",
            FilterExpression="begins_with(task_id, :prefix)",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":owner": s_attr(owner), ":prefix": s_attr(prefix)},
            ScanIndexForward=False,
            Limit=min(max_items, 1000),
        ):
            looked += int(answer.get("ScannedCount", 0))
            found.extend(item_to_task(raw) for raw in answer.get("Items", []))
            complete = "LastEvaluatedKey" not in answer
            if looked >= max_items or len(found) >= 20:
                break
        return found[:20], looked, complete

    def oldest_in_status(self, owner: str, status: TaskStatus) -> Task | None:
        for answer in self._query_pages(
            time.monotonic() + 1.0,
            1,
            IndexName="by-owner-status",
            KeyConditionExpression="#owner = :owner AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#owner": "owner", "#sk": "status_key"},
            ExpressionAttributeValues={":owner": s_attr(owner), ":prefix": s_attr(f"{status.value}#")},
            ScanIndexForward=True,
            Limit=1,
        ):
            items = answer.get("Items", [])
            return item_to_task(items[0]) if items else None
        return None
