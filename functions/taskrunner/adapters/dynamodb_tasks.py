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
from .aws import CONDITION_FAILED, TRANSACTION_CANCELED, Refused, translated, unavailable
from .dynamodb_codec import (
    encode_field,
    item_to_task,
    s_attr,
    same_task,
    task_to_item,
)
from .dynamodb_expressions import Expression, UpdateExpression, all_of, any_of
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
                with translated("DynamoDB", expected={CONDITION_FAILED}):
                    self._db.put_item(
                        TableName=self._table,
                        Item=item,
                        ConditionExpression="attribute_not_exists(task_id)",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
            except Refused as refused:
                if not same_task(refused.response.get("Item"), task):
                    raise TaskAlreadyExistsError(task.task_id) from None
                # else a retry of our own write whose first answer was lost
            return
        idem = {
            "task_id": s_attr(self._idem_id(task.owner, task.idempotency_key)),
            "target_task_id": s_attr(task.task_id),
            "request_hash": s_attr(idempotency_hash or ""),
            "expires_at": {"N": str(int(time.time()) + IDEMPOTENCY_SECONDS)},
        }
        try:
            with translated("DynamoDB", expected={TRANSACTION_CANCELED}):
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
        except Refused as refused:
            reasons = refused.response.get("CancellationReasons") or []
            old_task = reasons[0].get("Item") if reasons else None
            old_key = reasons[1].get("Item") if len(reasons) > 1 else None
            if same_task(old_task, task) or (old_key or {}).get("target_task_id", {}).get("S") == task.task_id:
                return  # a retry of our own write whose first answer was lost
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons:
                raise TaskAlreadyExistsError(task.task_id) from None
            raise unavailable("DynamoDB", refused.error) from refused.error

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
        come back and are merged into it: a smaller answer than the whole item.

        The index keys are written when the task is created and changed only by its terminal
        write: a claim, progress, checkpoint or lease write touches no index (``due_at`` aside,
        when a write moves it; an active task always has ``sweep_pk``)."""
        update = UpdateExpression().increment("version")
        if "attempt_started_at" in changes:
            # keep the start of the attempt this claim replaces (an update expression reads the
            # item as it was, before the SET of attempt_started_at below)
            update.set_from("prior_attempt_started_at", "attempt_started_at", s_attr(""), hint="no_start")
        for field, value in changes.items():
            encoded = encode_field(field, value)  # None: the attribute is removed
            if field == "started_at" and encoded is not None:
                update.set_if_absent(field, encoded)  # the first attempt's start stays
            else:
                update.set(field, encoded)
        if increment_attempts:
            update.increment("attempts")
        if increment_segments:
            update.increment("segments", from_zero=True)
        if "status" in changes and TaskStatus(changes["status"]).is_terminal:
            # the task leaves the active indexes and enters by-owner-done (terminal is final)
            update.remove("active_pk").remove("sweep_pk")
            update.set("done_pk", s_attr(owner_pk(ref.owner, ref.task_id)))
            update.set("expires_at", {"N": str(int(time.time()) + RETENTION_SECONDS)})
        try:
            with translated("DynamoDB", expected={CONDITION_FAILED}):
                answer = self._db.update_item(
                    TableName=self._table,
                    Key={"task_id": s_attr(ref.task_id)},
                    ReturnValues="UPDATED_NEW" if current is not None else "ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **update.request(expected_condition(update, expect)),
                )
        except Refused as refused:
            old = refused.response.get("Item")
            old_task = item_to_task(old) if old is not None else self.get(ref.task_id)
            if old_task is None:
                raise TaskNotFoundError(ref.task_id) from None
            raise ConditionFailedError(ref.task_id, old_task) from None
        if current is None:
            return item_to_task(answer["Attributes"])
        merged = task_to_item(current)
        merged.update(answer.get("Attributes", {}))
        for attribute in update.removed:
            merged.pop(attribute, None)
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


def expected_condition(expression: Expression, expect: Expect) -> str:
    """The ConditionExpression of a write expecting ``expect``: the task exists, in one of the
    expected statuses, at the expected attempt and segment, handed over or not; or, when a
    lease may have run out, RUNNING with a lease that ended before ``lease_expired_before``."""
    if expect.statuses:
        expected = [s_attr(status.value) for status in sorted(expect.statuses)]
        clauses = [expression.is_in("status", expected, hint="expected_status")]
    else:
        clauses = [expression.exists("task_id")]
    if expect.attempts is not None:
        clauses.append(expression.equals("attempts", {"N": str(expect.attempts)}, hint="expected_attempts"))
    if expect.segments is not None:
        clauses.append(expression.equals("segments", {"N": str(expect.segments)}, hint="expected_segments"))
    if expect.handed_over is not None:
        handed_over = expression.exists if expect.handed_over else expression.not_exists
        clauses.append(handed_over("handed_over_at"))
    condition = all_of(*clauses)
    if expect.lease_expired_before is not None:
        running = expression.equals("status", s_attr(TaskStatus.RUNNING.value), hint="running")
        lease = expression.compare("lease_expires_at", "<", s_attr(expect.lease_expired_before), hint="lease_before")
        condition = any_of(condition, all_of(running, lease))
    return condition


__all__ = ["DynamoDbTaskRepository", "item_to_task", "task_to_item"]
