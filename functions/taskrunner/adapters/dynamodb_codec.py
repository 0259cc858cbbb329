"""The task item's codec: a Task as a DynamoDB item and back, and list cursors.

Item layout (one item per task, key ``task_id``; shards in dynamodb_shards.py):
- ``active_pk`` (owner#shard) + ``created_key`` (created_at#task_id), only while active
  -> index ``by-owner-active`` (sparse, keys and ``name``)
- ``done_pk`` (owner#shard) + ``created_key``, only once terminal
  -> index ``by-owner-done`` (sparse, keys, ``status`` and ``name``)
- ``sweep_pk`` (ACTIVE#shard) + ``due_at``, only while active -> index ``by-due`` (sparse, keys)
A claim, progress, checkpoint or lease write sets none of these keys (and no projected
attribute): it writes no index. Only the put and the terminal write do (and ``due_at`` moves).
JSON-valued fields (parameters, result, checkpoint, ...) are stored as JSON strings; an item
that cannot be read whole is read with markers (``jsonsafe.unreadable``), never an error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..domain import jsonsafe
from ..domain.attempts import history_from_json
from ..domain.errors import (
    InvalidCursorError,
)
from ..domain.models import (
    CallbackState,
    CallbackStatus,
    Progress,
    Task,
    TaskError,
    TaskStatus,
)
from .dynamodb_shards import due_pk, owner_pk

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


def s_attr(value: str) -> dict[str, str]:
    return {"S": value}


def encode_field(field: str, value: Any) -> dict[str, Any] | None:
    """One Task field as a DynamoDB attribute value; None means 'remove the attribute'."""
    if field in JSON_FIELDS:
        return s_attr(json.dumps(value, separators=(",", ":"), default=str))
    if value is None:
        return None
    if field == "checkpoint":  # a task's saved state: JSON, absent when there is none
        return s_attr(json.dumps(value, separators=(",", ":")))
    if field == "status":
        return s_attr(TaskStatus(value).value)
    if field == "error":
        return s_attr(json.dumps(value.to_dict()))
    if field == "progress":
        return s_attr(json.dumps(value.to_dict()))
    if field == "callback":
        return s_attr(json.dumps(value.to_dict()))
    if field == "attempt_history":  # our own JSON, bounded (see domain/attempts.py)
        return s_attr(json.dumps([entry.to_dict() for entry in value], separators=(",", ":")))
    if field in INT_FIELDS:
        return {"N": str(int(value))}
    if field in BOOL_FIELDS:
        return {"BOOL": bool(value)}
    if field in STR_FIELDS:
        return s_attr(str(value))
    raise ValueError(f"unknown task field {field!r}")


def task_to_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {"task_id": s_attr(task.task_id), "status": s_attr(task.status.value)}
    own_json = ("error", "progress", "callback", "checkpoint", "attempt_history")
    for field in (*JSON_FIELDS, *STR_FIELDS, *INT_FIELDS, *BOOL_FIELDS, *own_json):
        encoded = encode_field(field, getattr(task, field))
        if encoded is not None:
            item[field] = encoded
    item["created_key"] = s_attr(f"{task.created_at}#{task.task_id}")
    if task.is_terminal:
        item["done_pk"] = s_attr(owner_pk(task.owner, task.task_id))
    else:
        item["active_pk"] = s_attr(owner_pk(task.owner, task.task_id))
        if task.due_at:
            item["sweep_pk"] = s_attr(due_pk(task.task_id))
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


def same_task(item: Mapping[str, Any] | None, task: Task) -> bool:
    """Whether a stored item is this very task (written by an earlier try of the same request)."""
    if not item:
        return False
    return all(
        item.get(k, {}).get("S") == v
        for k, v in (("owner", task.owner), ("created_at", task.created_at), ("name", task.name))
    )
