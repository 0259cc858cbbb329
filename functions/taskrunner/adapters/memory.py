"""In-memory fakes of every port, for unit tests and quick experiments."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..domain.errors import (
    ConditionFailedError,
    DependencyUnavailableError,
    InvalidCursorError,
    InvalidTransitionError,
    TaskAlreadyExistsError,
    TaskNotFoundError,
)
from ..domain.models import Expect, Message, Task, TaskPage, TaskRef, TaskStatus, can_transition


class InMemoryTaskRepository:
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        self.fail_next: Exception | None = None
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def create(self, task: Task, *, idempotency_hash: str | None = None) -> None:
        with self._lock:
            self._maybe_fail()
            if task.task_id in self.tasks:
                raise TaskAlreadyExistsError(task.task_id)
            if task.idempotency_key is not None:
                key = (task.owner, task.idempotency_key)
                if key in self.idempotency:
                    raise TaskAlreadyExistsError(task.task_id)
                self.idempotency[key] = (task.task_id, idempotency_hash or "")
            self.tasks[task.task_id] = task

    def get(self, task_id: str) -> Task | None:
        self._maybe_fail()
        return self.tasks.get(task_id)

    def find_by_idempotency_key(self, owner: str, key: str) -> tuple[str, str] | None:
        return self.idempotency.get((owner, key))

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
        with self._lock:
            self._maybe_fail()
            task = self.tasks.get(ref.task_id)
            if task is None:
                raise TaskNotFoundError(ref.task_id)
            if not expect.holds_for(task):
                raise ConditionFailedError(ref.task_id, task)
            values = dict(changes)
            if "started_at" in values and task.started_at is not None:
                values["started_at"] = task.started_at
            if "attempt_started_at" in values:
                # the start of the attempt this claim replaces is kept (see Task)
                values["prior_attempt_started_at"] = task.attempt_started_at
            if "status" in values:
                values["status"] = TaskStatus(values["status"])
                if not can_transition(task.status, values["status"]):
                    # models.ALLOWED_TRANSITIONS is the rule (Expect.into builds every moving write's condition
                    # from it); checked again here against the status the task really has
                    raise InvalidTransitionError(ref.task_id, task.status.value, f"become {values['status'].value}")
            if "attempt_history" in values:
                values["attempt_history"] = tuple(values["attempt_history"])
            if increment_attempts:
                values["attempts"] = task.attempts + 1
            if increment_segments:
                values["segments"] = task.segments + 1
            values["version"] = task.version + 1
            updated = dataclasses.replace(task, **values)
            self.tasks[ref.task_id] = updated
            return updated

    def list(
        self, owner: str, *, statuses: Iterable[TaskStatus] | None, name: str | None, limit: int, cursor: str | None
    ) -> TaskPage:
        wanted = set(statuses) if statuses else None
        rows = sorted(
            (
                t
                for t in self.tasks.values()
                if t.owner == owner and (wanted is None or t.status in wanted) and (name is None or t.name == name)
            ),
            key=lambda t: (t.created_at, t.task_id),
            reverse=True,
        )
        if cursor:
            keys = [f"{t.created_at}#{t.task_id}" for t in rows]
            if cursor not in keys:
                raise InvalidCursorError("cursor is not one this API returned")
            rows = rows[keys.index(cursor) + 1 :]
        page = rows[:limit]
        more = len(rows) > limit
        return TaskPage(items=page, cursor=f"{page[-1].created_at}#{page[-1].task_id}" if more and page else None)

    def due(self, before: str, limit: int) -> builtins.list[Task]:
        rows = [t for t in self.tasks.values() if not t.is_terminal and t.due_at is not None and t.due_at < before]
        return sorted(rows, key=lambda t: t.due_at or "")[:limit]

    # -- monitor reads (domain/monitor.py's TaskStats) ---------------------------------
    def count_by_status(
        self, owner: str, status: TaskStatus, *, since: str | None, deadline: float
    ) -> tuple[int, bool]:
        self._maybe_fail()
        counted = sum(
            1
            for t in self.tasks.values()
            if t.owner == owner and t.status is status and (since is None or t.created_at >= since)
        )
        return counted, True

    def recent(self, owner: str, *, since: str, limit: int, deadline: float) -> tuple[builtins.list[Task], bool]:
        self._maybe_fail()
        rows = sorted(
            (t for t in self.tasks.values() if t.owner == owner and t.created_at >= since),
            key=lambda t: (t.created_at, t.task_id),
            reverse=True,
        )
        return rows[:limit], len(rows) <= limit

    def find_by_prefix(
        self, owner: str, prefix: str, *, max_items: int, deadline: float
    ) -> tuple[builtins.list[Task], int, bool]:
        self._maybe_fail()
        rows = sorted(
            (t for t in self.tasks.values() if t.owner == owner), key=lambda t: (t.created_at, t.task_id), reverse=True
        )[:max_items]
        owned = sum(1 for t in self.tasks.values() if t.owner == owner)
        return [t for t in rows if t.task_id.startswith(prefix)][:20], len(rows), len(rows) == owned

    def oldest_in_status(self, owner: str, status: TaskStatus) -> Task | None:
        rows = sorted(
            (t for t in self.tasks.values() if t.owner == owner and t.status is status),
            key=lambda t: (t.created_at, t.task_id),
        )
        return rows[0] if rows else None

    def ping(self) -> None:
        self._maybe_fail()


class InMemoryTaskQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Task, int]] = []
        self.continuations: list[tuple[str, int, int]] = []  # (task_id, attempt, segment)
        self.callbacks: list[str] = []
        self.visibility: list[tuple[str, str, int]] = []
        self.fail_next: Exception | None = None

    def enqueue(self, task: Task, *, delay_seconds: int = 0, continuation: bool = False) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        queue = "priority" if task.priority else task.queue
        self.sent.append((queue, task, delay_seconds))
        if continuation:
            self.continuations.append((task.task_id, task.attempts, task.segments))

    def enqueue_callback(self, task_id: str, *, delay_seconds: int = 0) -> None:
        self.callbacks.append(task_id)

    def change_visibility(self, source_arn: str, receipt_handle: str, seconds: int) -> None:
        self.visibility.append((source_arn, receipt_handle, seconds))

    def ping(self) -> None:
        if self.fail_next is not None:
            raise DependencyUnavailableError("SQS", "fake outage")


class InMemoryMessageStore:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def add(self, message: Message) -> None:
        self.messages.append(message)

    def list(self, owner: str, *, limit: int, cursor: str | None) -> tuple[builtins.list[Message], str | None]:
        rows = sorted((m for m in self.messages if m.owner == owner), key=lambda m: m.message_id, reverse=True)
        if cursor:
            rows = [m for m in rows if m.message_id < cursor]
        page = rows[:limit]
        return page, (page[-1].message_id if len(rows) > limit and page else None)


@dataclasses.dataclass
class FakeResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RecordingHttpClient:
    """HttpClient/CallbackSender fake: records requests, answers from a script of codes."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> FakeResponse:
        self.requests.append({"method": method, "url": url, "headers": dict(headers or {}), "body": body})
        status = self.statuses.pop(0) if self.statuses else 200
        return FakeResponse(status, {"content-type": "application/json"}, b'{"ok": true}')

    def send(self, url: str, payload: bytes, *, message_id: str, timeout: float, owner: str = "") -> int:
        return self.request(
            "POST", url, headers={"webhook-id": message_id, "owner": owner}, body=payload, timeout=timeout
        ).status


class InMemoryKeyRevocations:
    def __init__(self) -> None:
        self.revoked: dict[str, str] = {}
        self.lookups = 0

    def record(self, key_id: str, owner: str, when: str) -> None:
        self.revoked[key_id] = when

    def is_revoked(self, key_id: str) -> bool:
        self.lookups += 1
        return key_id in self.revoked


class InMemoryApiKeyStore:
    def __init__(self) -> None:
        self.records: dict[str, Any] = {}

    def get(self, key_hash: str) -> Any:
        return self.records.get(key_hash)

    def put(self, record: Any) -> None:
        self.records[record.key_hash] = record

    def all(self) -> builtins.list[Any]:
        return sorted(self.records.values(), key=lambda r: r.created_at)

    def revoke(self, key_id: str, when: str) -> Any:
        for digest, record in self.records.items():
            if record.key_id == key_id:
                self.records[digest] = dataclasses.replace(record, revoked_at=when)
                return self.records[digest]
        return None


class InMemoryQueueStats:
    """QueueStats fake: depths set by the test."""

    def __init__(self, depths: builtins.list[dict[str, Any]] | None = None) -> None:
        self.answer = depths or []

    def depths(self) -> builtins.list[dict[str, Any]]:
        return [dict(d) for d in self.answer]
