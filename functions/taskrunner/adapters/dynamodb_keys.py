"""ApiKeyStore on DynamoDB: one item per key, keyed by the key's SHA-256 (never the key)."""

from __future__ import annotations

from typing import Any

from ..domain.auth import ApiKeyRecord
from .aws import translated
from .dynamodb_expressions import UpdateExpression


def _record(item: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=item["key_id"]["S"],
        key_hash=item["key_hash"]["S"],
        owner=item["owner"]["S"],
        name=item.get("name", {"S": ""})["S"],
        created_at=item["created_at"]["S"],
        revoked_at=item["revoked_at"]["S"] if "revoked_at" in item else None,
    )


class DynamoDbApiKeyStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def get(self, key_hash: str) -> ApiKeyRecord | None:
        with translated("DynamoDB"):
            item = self._db.get_item(TableName=self._table, Key={"key_hash": {"S": key_hash}}).get("Item")
        return _record(item) if item else None

    def put(self, record: ApiKeyRecord) -> None:
        with translated("DynamoDB"):
            self._db.put_item(
                TableName=self._table,
                Item={
                    "key_hash": {"S": record.key_hash},
                    "key_id": {"S": record.key_id},
                    "owner": {"S": record.owner},
                    "name": {"S": record.name},
                    "created_at": {"S": record.created_at},
                },
                ConditionExpression="attribute_not_exists(key_hash)",
            )

    def all(self) -> list[ApiKeyRecord]:
        # An administrator's listing of a small table: the one place a Scan is fine.
        records: list[ApiKeyRecord] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            with translated("DynamoDB"):
                answer = self._db.scan(**kwargs)
            records += [_record(i) for i in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                return sorted(records, key=lambda r: r.created_at)
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def revoke(self, key_id: str, when: str) -> ApiKeyRecord | None:
        for record in self.all():
            if record.key_id == key_id:
                update = UpdateExpression().set("revoked_at", {"S": when})
                with translated("DynamoDB"):
                    self._db.update_item(
                        TableName=self._table, Key={"key_hash": {"S": record.key_hash}}, **update.request()
                    )
                return ApiKeyRecord(record.key_id, record.key_hash, record.owner, record.name, record.created_at, when)
        return None


REVOKED_PREFIX = "revoked#"


class DynamoDbKeyRevocations:
    """KeyRevocations as items of the tasks table, which the stream function may already read
    (it may not read the key table): ``task_id`` = ``revoked#<key_id>``. Task ids never contain
    ``#``, and the item has none of the indexes' attributes, so it is no task and is listed by
    no query."""

    def __init__(self, client: Any, tasks_table: str) -> None:
        self._db = client
        self._table = tasks_table

    def record(self, key_id: str, owner: str, when: str) -> None:
        with translated("DynamoDB"):
            self._db.put_item(
                TableName=self._table,
                Item={
                    "task_id": {"S": REVOKED_PREFIX + key_id},
                    "key_id": {"S": key_id},
                    "key_owner": {"S": owner},
                    "revoked_at": {"S": when},
                },
            )

    def is_revoked(self, key_id: str) -> bool:
        with translated("DynamoDB"):
            answer = self._db.get_item(
                TableName=self._table,
                Key={"task_id": {"S": REVOKED_PREFIX + key_id}},
                ProjectionExpression="task_id",
                ConsistentRead=True,
            )
        return "Item" in answer
