"""TaskRepository on DynamoDB: conditional writes, GSIs for lists and the reconciler.

Item layout (one item per task, key ``task_id``):
- ``owner`` + ``created_key`` (created_at#task_id)      -> index ``by-owner`` (newest first)
- ``owner`` + ``status_key`` (STATUS#created_key)        -> index ``by-owner-status``
- ``sweep_pk`` ("ACTIVE") + ``due_at``, only while active -> index ``by-due`` (sparse)
- idempotency keys are items of their own: ``task_id`` = ``idem#<len(owner)>#<owner>#<key>``
  (the owner's length first, so no owner/key pair can spell another's).
- revoked API keys too: ``task_id`` = ``revoked#<key_id>`` (see adapters/dynamodb_keys.py).
JSON-valued fields (parameters, result, ...) are stored as JSON strings.
"""

from __future__ import annotations

import base64
import builtins
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..domain import jsonsafe
from ..domain.attempts import history_from_json
from ..domain.errors import (
    ConditionFailedError,
    InvalidCursorError,
    TaskAlreadyExistsError,
    TaskNotFoundError,
)
from ..domain.models import (
    CallbackState,
    CallbackStatus,
    Expect,
    Progress,
    Task,
    TaskError,
    TaskPage,
    TaskRef,
    TaskStatus,
)
from .aws import TRANSIENT_CODES, error_code, unavailable

JSON_FIELDS = ("parameters", "metadata", "result")
STR_FIELDS = (
    "owner",
    "name",
    "queue",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "next_attempt_at",
    "lease_expires_at",
    "idempotency_key",
    "due_at",
    "checkpointed_at",
    "handed_over_at",
    "attempt_started_at",
    "prior_attempt_started_at",
    "retry_of",
)
INT_FIELDS = (
    "max_attempts",
    "timeout_seconds",
    "version",
    "attempts",
    "delay_seconds",
    "max_runtime_seconds",
    "segments",
)
BOOL_FIELDS = ("priority", "cancel_requested")
SWEEP_PK = "ACTIVE"
RETENTION_SECONDS = 30 * 24 * 3600
IDEMPOTENCY_SECONDS = 24 * 3600


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _encode(field: str, value: Any) -> dict[str, Any] | None:
    """One Task field as a DynamoDB attribute value; None means 'remove the attribute'."""
    if field in JSON_FIELDS:
        return _s(json.dumps(value, separators=(",", ":"), default=str))
    if value is None:
        return None
    if field == "checkpoint":  # a task's saved state: JSON, absent when there is none
        return _s(json.dumps(value, separators=(",", ":")))
    if field == "status":
        return _s(TaskStatus(value).value)
    if field == "error":
        return _s(json.dumps(value.to_dict()))
    if field == "progress":
        return _s(json.dumps(value.to_dict()))
    if field == "callback":
        return _s(json.dumps(value.to_dict()))
    if field == "attempt_history":  # our own JSON, bounded (see domain/attempts.py)
        return _s(json.dumps([entry.to_dict() for entry in value], separators=(",", ":")))
    if field in INT_FIELDS:
        return {"N": str(int(value))}
    if field in BOOL_FIELDS:
        return {"BOOL": bool(value)}
    if field in STR_FIELDS:
        return _s(str(value))
    raise ValueError(f"unknown task field {field!r}")


def task_to_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {"task_id": _s(task.task_id), "status": _s(task.status.value)}
    own_json = ("error", "progress", "callback", "checkpoint", "attempt_history")
    for field in (*JSON_FIELDS, *STR_FIELDS, *INT_FIELDS, *BOOL_FIELDS, *own_json):
        encoded = _encode(field, getattr(task, field))
        if encoded is not None:
            item[field] = encoded
    created_key = f"{task.created_at}#{task.task_id}"
    item["created_key"] = _s(created_key)
    item["status_key"] = _s(f"{task.status.value}#{created_key}")
    if task.due_at and not task.is_terminal:
        item["sweep_pk"] = _s(SWEEP_PK)
    return item


def item_to_task(item: Mapping[str, Any]) -> Task:
    def s(name: str) -> str | None:
        v = item.get(name)
        return v["S"] if v else None

    def n(name: str, default: int = 0) -> int:
        v = item.get(name)
        return int(v["N"]) if v else default

    def b(name: str) -> bool:
        v = item.get(name)
        return bool(v["BOOL"]) if v else False

    def j(name: str) -> Any:
        """Our own JSON (error, progress, callback); None if it cannot be read."""
        raw = s(name)
        try:
            return json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):
            return None

    def free(name: str) -> Any:
        """A free-form field: its value, or a marker if it is not valid, bounded JSON (an item
        written by an older version), so one bad item never breaks a read."""
        raw = s(name)
        if raw is None:
            return None
        try:
            return jsonsafe.loads(raw)
        except jsonsafe.UnsafeJsonError as exc:
            return jsonsafe.unreadable(name, exc)

    error = j("error")
    progress = j("progress") or {}
    callback = j("callback")
    return Task(
        task_id=item["task_id"]["S"],
        name=s("name") or "",
        owner=s("owner") or "",
        queue=s("queue") or "default",
        status=TaskStatus(item["status"]["S"]),
        parameters=free("parameters") or {},
        created_at=s("created_at") or "",
        updated_at=s("updated_at") or "",
        max_attempts=n("max_attempts", 1),
        timeout_seconds=n("timeout_seconds", 60),
        version=n("version", 1),
        attempts=n("attempts"),
        delay_seconds=n("delay_seconds"),
        priority=b("priority"),
        metadata=free("metadata") or {},
        result=free("result"),
        error=TaskError(error["type"], error["message"]) if error else None,
        progress=Progress(float(progress.get("percent", 0.0)), progress.get("message")),
        started_at=s("started_at"),
        completed_at=s("completed_at"),
        next_attempt_at=s("next_attempt_at"),
        lease_expires_at=s("lease_expires_at"),
        cancel_requested=b("cancel_requested"),
        callback=CallbackState(
            url=callback["url"],
            status=CallbackStatus(callback["status"]),
            attempts=int(callback.get("attempts", 0)),
            last_error=callback.get("last_error"),
            delivered_at=callback.get("delivered_at"),
        )
        if callback
        else None,
        idempotency_key=s("idempotency_key"),
        due_at=s("due_at"),
        max_runtime_seconds=n("max_runtime_seconds", 86_400),
        segments=n("segments"),
        checkpoint=free("checkpoint"),
        checkpointed_at=s("checkpointed_at"),
        handed_over_at=s("handed_over_at"),
        attempt_history=history_from_json(j("attempt_history")),
        attempt_started_at=s("attempt_started_at"),
        prior_attempt_started_at=s("prior_attempt_started_at") or None,
        retry_of=s("retry_of"),
    )


def encode_cursor(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, allowed: Iterable[str]) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, TypeError):
        raise InvalidCursorError("cursor is not one this API returned") from None
    if (
        not isinstance(key, dict)
        or set(key) != set(allowed)
        or not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values())
    ):
        raise InvalidCursorError("cursor is not one this API returned")
    return key


def _same_task(item: Mapping[str, Any] | None, task: Task) -> bool:
    """Whether a stored item is this very task (written by an earlier try of the same request)."""
    if not item:
        return False
    return all(
        item.get(k, {}).get("S") == v
        for k, v in (("owner", task.owner), ("created_at", task.created_at), ("name", task.name))
    )


class DynamoDbTaskRepository:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    # -- writes -------------------------------------------------------------------------
    def create(self, task: Task, *, idempotency_hash: str | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        item = task_to_item(task)
        if task.idempotency_key is None:
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(task_id)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    if _same_task(exc.response.get("Item"), task):
                        return  # a retry of our own write whose first answer was lost
                    raise TaskAlreadyExistsError(task.task_id) from None
                raise unavailable("DynamoDB", exc) from exc
            except BotoCoreError as exc:
                raise unavailable("DynamoDB", exc) from exc
            return
        idem = {
            "task_id": _s(self._idem_id(task.owner, task.idempotency_key)),
            "target_task_id": _s(task.task_id),
            "request_hash": _s(idempotency_hash or ""),
            "expires_at": {"N": str(int(time.time()) + IDEMPOTENCY_SECONDS)},
        }
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(task_id)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": idem,
                            "ConditionExpression": "attribute_not_exists(task_id)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ],
                # DynamoDB answers a retry with the same token (within 10 minutes) as a success
                ClientRequestToken=task.task_id[:36],
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                old_task = reasons[0].get("Item") if reasons else None
                old_key = reasons[1].get("Item") if len(reasons) > 1 else None
                if _same_task(old_task, task) or (old_key or {}).get("target_task_id", {}).get("S") == task.task_id:
                    return  # a retry of our own write whose first answer was lost
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons:
                    raise TaskAlreadyExistsError(task.task_id) from None
            raise unavailable("DynamoDB", exc) from exc
        except BotoCoreError as exc:
            raise unavailable("DynamoDB", exc) from exc

    @staticmethod
    def _idem_id(owner: str, key: str) -> str:
        # Length-prefixed: owner "dev#x" with key "y" and owner "dev" with key "x#y" differ.
        return f"idem#{len(owner)}#{owner}#{key}"

    def find_by_idempotency_key(self, owner: str, key: str) -> tuple[str, str] | None:
        item = self._get_item(self._idem_id(owner, key))
        if item is None or int(item.get("expires_at", {"N": "0"})["N"]) < time.time():
            return None
        return item["target_task_id"]["S"], item["request_hash"]["S"]

    def update(
        self,
        ref: TaskRef,
        changes: Mapping[str, Any],
        expect: Expect,
        *,
        increment_attempts: bool = False,
        increment_segments: bool = False,
        current: Task | None = None,
    ) -> Task:
        """With ``current`` (the task as the caller last saw it), only the updated attributes
        come back and are merged into it: a smaller answer than the whole item."""
        from botocore.exceptions import BotoCoreError, ClientError

        names: dict[str, str] = {"#status": "status", "#version": "version"}
        values: dict[str, Any] = {":one": {"N": "1"}}
        sets = ["#version = #version + :one"]
        removes: list[str] = []
        if "attempt_started_at" in changes:
            # keep the start of the attempt this claim replaces (read before the SET below
            # changes it: an update expression reads the item as it was)
            names["#prior_start"] = "prior_attempt_started_at"
            values[":no_start"] = _s("")
            alias = f"#f{list(changes).index('attempt_started_at')}"
            sets.append(f"#prior_start = if_not_exists({alias}, :no_start)")
        for i, (field, value) in enumerate(changes.items()):
            alias = f"#f{i}"
            names[alias] = field
            encoded = _encode(field, value)
            if encoded is None:
                removes.append(alias)
            elif field == "started_at":
                values[f":v{i}"] = encoded
                sets.append(f"{alias} = if_not_exists({alias}, :v{i})")
            else:
                values[f":v{i}"] = encoded
                sets.append(f"{alias} = :v{i}")
        if increment_attempts:
            names["#attempts"] = "attempts"
            sets.append("#attempts = #attempts + :one")
        if increment_segments:
            names["#segments"] = "segments"
            values[":zero"] = {"N": "0"}
            sets.append("#segments = if_not_exists(#segments, :zero) + :one")
        if "status" in changes:
            status = TaskStatus(changes["status"])
            names["#status_key"] = "status_key"
            values[":status_key"] = _s(f"{status.value}#{ref.created_at}#{ref.task_id}")
            sets.append("#status_key = :status_key")
            if status.is_terminal:
                names["#sweep_pk"] = "sweep_pk"
                removes.append("#sweep_pk")
                names["#expires_at"] = "expires_at"
                values[":expires_at"] = {"N": str(int(time.time()) + RETENTION_SECONDS)}
                sets.append("#expires_at = :expires_at")
        # ``sweep_pk`` is written when the task is created and removed when it ends; an active
        # task always has it, so updates of ``due_at`` need not write it again.
        # the condition
        status_values = []
        for k, status in enumerate(sorted(expect.statuses)):
            values[f":e{k}"] = _s(status.value)
            status_values.append(f":e{k}")
        clauses = []
        if status_values:
            clauses.append(f"#status IN ({', '.join(status_values)})")
        if expect.attempts is not None:
            names["#attempts"] = "attempts"
            values[":expected_attempts"] = {"N": str(expect.attempts)}
            clauses.append("#attempts = :expected_attempts")
        if expect.segments is not None:
            names["#segments"] = "segments"
            values[":expected_segments"] = {"N": str(expect.segments)}
            clauses.append("#segments = :expected_segments")
        if expect.handed_over is not None:
            names["#handed_over"] = "handed_over_at"
            clauses.append(
                "attribute_exists(#handed_over)" if expect.handed_over else "attribute_not_exists(#handed_over)"
            )
        main = " AND ".join(clauses) if clauses else "attribute_exists(task_id)"
        if expect.lease_expired_before is not None:
            names["#lease"] = "lease_expires_at"
            values[":running"] = _s(TaskStatus.RUNNING.value)
            values[":lease_before"] = _s(expect.lease_expired_before)
            main = f"({main}) OR (#status = :running AND #lease < :lease_before)"
        condition = main if status_values else f"attribute_exists(task_id) AND ({main})"
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(dict.fromkeys(removes))
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key={"task_id": _s(ref.task_id)},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW" if current is not None else "ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                if old is None:
                    old_task = self.get(ref.task_id)
                    if old_task is None:
                        raise TaskNotFoundError(ref.task_id) from None
                    raise ConditionFailedError(ref.task_id, old_task) from None
                raise ConditionFailedError(ref.task_id, item_to_task(old)) from None
            raise unavailable("DynamoDB", exc) from exc
        except BotoCoreError as exc:
            raise unavailable("DynamoDB", exc) from exc
        if current is None:
            return item_to_task(answer["Attributes"])
        merged = task_to_item(current)
        merged.update(answer.get("Attributes", {}))
        for alias in removes:
            merged.pop(names[alias], None)
        return item_to_task(merged)

    # -- reads --------------------------------------------------------------------------
    def _get_item(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._db.get_item(TableName=self._table, Key={"task_id": _s(key)}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable("DynamoDB", exc) from exc
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def get(self, task_id: str) -> Task | None:
        if "#" in task_id:  # idempotency and revocation items share the table; task ids have no '#'
            return None
        item = self._get_item(task_id)
        return item_to_task(item) if item is not None else None

    def list(
        self,
        owner: str,
        *,
        statuses: Iterable[TaskStatus] | None,
        name: str | None,
        limit: int,
        cursor: str | None,
    ) -> TaskPage:
        wanted = sorted(statuses) if statuses else []
        names: dict[str, str] = {"#owner": "owner"}
        values: dict[str, Any] = {":owner": _s(owner)}
        filters: list[str] = []
        if len(wanted) == 1:
            index, sort_key = "by-owner-status", "status_key"
            names["#sk"] = "status_key"
            values[":prefix"] = _s(f"{wanted[0].value}#")
            key_condition = "#owner = :owner AND begins_with(#sk, :prefix)"
        else:
            index, sort_key = "by-owner", "created_key"
            key_condition = "#owner = :owner"
            if wanted:
                names["#status"] = "status"
                refs = []
                for k, status in enumerate(wanted):
                    values[f":s{k}"] = _s(status.value)
                    refs.append(f":s{k}")
                filters.append(f"#status IN ({', '.join(refs)})")
        if name:
            names["#name"] = "name"
            values[":name"] = _s(name)
            filters.append("#name = :name")
        key_fields = ("task_id", "owner", sort_key)
        start = decode_cursor(cursor, key_fields) if cursor else None
        if start is not None and start["owner"]["S"] != owner:
            raise InvalidCursorError("cursor is not one this API returned")
        items: list[Task] = []
        last_item: dict[str, Any] | None = None
        more = False
        from botocore.exceptions import BotoCoreError, ClientError

        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": index,
                "KeyConditionExpression": key_condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": False,
                "Limit": limit + 1 if not filters else max(limit * 2, 25),
            }
            if filters:
                kwargs["FilterExpression"] = " AND ".join(filters)
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            try:
                answer = self._db.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise unavailable("DynamoDB", exc) from exc
            for raw in answer.get("Items", []):
                if len(items) == limit:
                    more = True
                    break
                items.append(item_to_task(raw))
                last_item = raw
            if more:
                break
            start = answer.get("LastEvaluatedKey")
            if start is None:
                break
        next_cursor = None
        if more and last_item is not None:
            next_cursor = encode_cursor({k: last_item[k] for k in key_fields})
        return TaskPage(items=items, cursor=next_cursor)

    def due(self, before: str, limit: int) -> builtins.list[Task]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._db.query(
                TableName=self._table,
                IndexName="by-due",
                KeyConditionExpression="sweep_pk = :pk AND due_at < :before",
                ExpressionAttributeValues={":pk": _s(SWEEP_PK), ":before": _s(before)},
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise unavailable("DynamoDB", exc) from exc
        tasks = []
        for key in answer.get("Items", []):
            task = self.get(key["task_id"]["S"])
            if task is not None and not task.is_terminal:
                tasks.append(task)
        return tasks

    # -- monitor reads (bounded: item and time limits; see domain/monitor.py) -------------
    def _query_pages(self, deadline: float, max_pages: int, **kwargs: Any) -> Iterable[dict[str, Any]]:
        """The pages of one query, until it ends, ``max_pages`` or the monotonic ``deadline``."""
        from botocore.exceptions import BotoCoreError, ClientError

        start: dict[str, Any] | None = None
        for _ in range(max_pages):
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            try:
                answer: dict[str, Any] = self._db.query(TableName=self._table, **kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise unavailable("DynamoDB", exc) from exc
            yield answer
            start = answer.get("LastEvaluatedKey")
            if start is None or time.monotonic() >= deadline:
                return

    def count_by_status(
        self, owner: str, status: TaskStatus, *, since: str | None, deadline: float
    ) -> tuple[int, bool]:
        """Select=COUNT on ``by-owner-status``: only the matching keys are read, no items sent."""
        values: dict[str, Any] = {":owner": _s(owner), ":lo": _s(f"{status.value}#{since or ''}")}
        # '$' sorts right after '#': every key of this status is below it
        values[":hi"] = _s(f"{status.value}$")
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
            ExpressionAttributeValues={":owner": _s(owner), ":since": _s(since)},
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
            ExpressionAttributeValues={":owner": _s(owner), ":prefix": _s(prefix)},
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
            ExpressionAttributeValues={":owner": _s(owner), ":prefix": _s(f"{status.value}#")},
            ScanIndexForward=True,
            Limit=1,
        ):
            items = answer.get("Items", [])
            return item_to_task(items[0]) if items else None
        return None

    def ping(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._db.describe_table(TableName=self._table)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable("DynamoDB", exc) from exc


__all__ = ["TRANSIENT_CODES", "DynamoDbTaskRepository", "item_to_task", "task_to_item"]
