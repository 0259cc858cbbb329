"""TaskRepository on DynamoDB: conditional writes, GSIs for lists and the reconciler.

The item layout and its codec are in dynamodb_codec.py, the sharded index keys in
dynamodb_shards.py, the listings and the reconciler's read in dynamodb_listing.py, the
dashboard's read-only queries in dynamodb_queries.py. The table holds two more kinds of items:
- idempotency keys: ``task_id`` = ``idem#<len(owner)>#<owner>#<key>`` (the owner's length
  first, so no owner/key pair can spell another's);
- revoked API keys: ``task_id`` = ``revoked#<key_id>`` (see adapters/dynamodb_keys.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.errors import (
    ConditionFailedError,
    TaskAlreadyExistsError,
    TaskNotFoundError,
)
from ..domain.models import (
    Expect,
    Task,
    TaskRef,
    TaskStatus,
)
from .aws import error_code, translated, unavailable
from .dynamodb_codec import (
    encode_field,
    item_to_task,
    s_attr,
    same_task,
    task_to_item,
)
from .dynamodb_queries import MonitorQueries
from .dynamodb_shards import owner_pk

RETENTION_SECONDS = 30 * 24 * 3600
IDEMPOTENCY_SECONDS = 24 * 3600


class DynamoDbTaskRepository(MonitorQueries):
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    # -- writes -------------------------------------------------------------------------
    def create(self, task: Task, *, idempotency_hash: str | None = None) -> None:
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
                    if same_task(exc.response.get("Item"), task):
                        return  # a retry of our own write whose first answer was lost
                    raise TaskAlreadyExistsError(task.task_id) from None
                raise unavailable("DynamoDB", exc) from exc
            except BotoCoreError as exc:
                raise unavailable("DynamoDB", exc) from exc
            return
        idem = {
            "task_id": s_attr(self._idem_id(task.owner, task.idempotency_key)),
            "target_task_id": s_attr(task.task_id),
            "request_hash": s_attr(idempotency_hash or ""),
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
                if same_task(old_task, task) or (old_key or {}).get("target_task_id", {}).get("S") == task.task_id:
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
        names: dict[str, str] = {"#status": "status", "#version": "version"}
        values: dict[str, Any] = {":one": {"N": "1"}}
        sets = ["#version = #version + :one"]
        removes: list[str] = []
        if "attempt_started_at" in changes:
            # keep the start of the attempt this claim replaces (read before the SET below
            # changes it: an update expression reads the item as it was)
            names["#prior_start"] = "prior_attempt_started_at"
            values[":no_start"] = s_attr("")
            alias = f"#f{list(changes).index('attempt_started_at')}"
            sets.append(f"#prior_start = if_not_exists({alias}, :no_start)")
        for i, (field, value) in enumerate(changes.items()):
            alias = f"#f{i}"
            names[alias] = field
            encoded = encode_field(field, value)
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
        if "status" in changes and TaskStatus(changes["status"]).is_terminal:
            # the task leaves the active indexes and enters by-owner-done (terminal is final)
            names["#active_pk"] = "active_pk"
            names["#sweep_pk"] = "sweep_pk"
            removes += ["#active_pk", "#sweep_pk"]
            names["#done_pk"] = "done_pk"
            values[":done_pk"] = s_attr(owner_pk(ref.owner, ref.task_id))
            sets.append("#done_pk = :done_pk")
            names["#expires_at"] = "expires_at"
            values[":expires_at"] = {"N": str(int(time.time()) + RETENTION_SECONDS)}
            sets.append("#expires_at = :expires_at")
        # The index keys are written when the task is created and changed only by its terminal
        # write: a claim, progress, checkpoint or lease write touches no index (``due_at`` aside,
        # when a write moves it; an active task always has ``sweep_pk``).
        # the condition
        status_values = []
        for k, status in enumerate(sorted(expect.statuses)):
            values[f":e{k}"] = s_attr(status.value)
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
            values[":running"] = s_attr(TaskStatus.RUNNING.value)
            values[":lease_before"] = s_attr(expect.lease_expired_before)
            main = f"({main}) OR (#status = :running AND #lease < :lease_before)"
        condition = main if status_values else f"attribute_exists(task_id) AND ({main})"
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(dict.fromkeys(removes))
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key={"task_id": s_attr(ref.task_id)},
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
        with translated("DynamoDB"):
            answer = self._db.get_item(TableName=self._table, Key={"task_id": s_attr(key)}, ConsistentRead=True)
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def get(self, task_id: str) -> Task | None:
        if "#" in task_id:  # idempotency and revocation items share the table; task ids have no '#'
            return None
        item = self._get_item(task_id)
        return item_to_task(item) if item is not None else None

    def ping(self) -> None:
        with translated("DynamoDB"):
            self._db.describe_table(TableName=self._table)


__all__ = ["DynamoDbTaskRepository", "item_to_task", "task_to_item"]
