"""MessageStore on DynamoDB: key (owner, message_id); message ids sort by time."""

from __future__ import annotations

import builtins
from typing import Any

from ..domain.models import Message
from .aws import translated
from .dynamodb_codec import decode_cursor, encode_cursor
from .dynamodb_expressions import Expression


class DynamoDbMessageStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def add(self, message: Message) -> None:
        with translated("DynamoDB"):
            self._db.put_item(
                TableName=self._table,
                Item={
                    "owner": {"S": message.owner},
                    "message_id": {"S": message.message_id},
                    "content": {"S": message.content},
                    "task_id": {"S": message.task_id},
                    "created_at": {"S": message.created_at},
                },
            )

    def list(self, owner: str, *, limit: int, cursor: str | None) -> tuple[builtins.list[Message], str | None]:
        key = Expression()
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": key.equals("owner", {"S": owner}),
            **key.placeholders(),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor, ("owner", "message_id"))
        with translated("DynamoDB"):
            answer = self._db.query(**kwargs)
        messages = [
            Message(
                message_id=i["message_id"]["S"],
                owner=i["owner"]["S"],
                content=i["content"]["S"],
                task_id=i["task_id"]["S"],
                created_at=i["created_at"]["S"],
            )
            for i in answer.get("Items", [])
        ]
        last = answer.get("LastEvaluatedKey")
        return messages, encode_cursor(last) if last else None
