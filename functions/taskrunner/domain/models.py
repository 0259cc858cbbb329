"""Task, its statuses and the transitions allowed between them. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from . import jsonsafe
from .attempts import Attempt
from .views import public_task, served, to_json


class TaskStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING})

ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.RUNNING,  # progress, or a reclaim after an expired lease
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.RETRYING,
        }
    ),
    TaskStatus.RETRYING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def can_transition(current: TaskStatus, new: TaskStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


class CallbackStatus(enum.StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    RETRYING = "RETRYING"
    FAILED = "FAILED"


def _text(value: str | None) -> str | None:
    return None if value is None else jsonsafe.printable(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def after(ts: datetime, seconds: float) -> datetime:
    return ts + timedelta(seconds=seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskError:
    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": jsonsafe.printable(self.type), "message": jsonsafe.printable(self.message)}


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    percent: float = 0.0
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        percent = self.percent if math.isfinite(self.percent) else 0.0
        return {"percent": percent, "message": _text(self.message)}


@dataclasses.dataclass(frozen=True, slots=True)
class CallbackState:
    url: str
    status: CallbackStatus = CallbackStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    delivered_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": jsonsafe.printable(self.url),
            "status": self.status.value,
            "attempts": self.attempts,
            "last_error": _text(self.last_error),
            "delivered_at": self.delivered_at,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRef:
    """What identifies a task in every index: carried by queue messages, so a worker can
    make its claiming write without reading the task first."""

    task_id: str
    owner: str
    created_at: str

    def to_dict(self) -> dict[str, str]:
        return {"task_id": self.task_id, "owner": self.owner, "created_at": self.created_at}


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """One accepted job. ``version`` grows by one on every stored change."""

    task_id: str
    name: str
    owner: str
    queue: str
    status: TaskStatus
    parameters: dict[str, Any]
    created_at: str
    updated_at: str
    max_attempts: int
    timeout_seconds: int
    version: int = 1
    attempts: int = 0
    delay_seconds: int = 0
    priority: bool = False
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    result: Any = None
    error: TaskError | None = None
    progress: Progress = Progress()
    started_at: str | None = None
    completed_at: str | None = None
    next_attempt_at: str | None = None
    lease_expires_at: str | None = None
    cancel_requested: bool = False
    callback: CallbackState | None = None
    idempotency_key: str | None = None
    # When the reconciler should look at the task if nothing else happened first
    # (a PENDING task never picked up, a RUNNING task whose lease ran out). None once terminal.
    due_at: str | None = None
    # Long jobs (see WorkerService): the total running time allowed across segments and
    # attempts, counted from the first start; the number of segments started so far (one per
    # worker invocation that ran the task); the state the task last saved with
    # ``ctx.checkpoint`` and when; and, while the task waits between two segments, when its
    # last segment handed it on (None while a segment runs).
    max_runtime_seconds: int = 86_400
    segments: int = 0
    checkpoint: Any = None
    checkpointed_at: str | None = None
    handed_over_at: str | None = None
    # Debugging a failure: the last attempts (oldest first, at most Policy.max_attempts_limit),
    # when the running attempt started, the start of the attempt it replaced (kept by the
    # claim that writes ``attempt_started_at``, so a lost attempt can be recorded later), and
    # the task this one re-runs (POST /api/tasks/{id}/retry).
    attempt_history: tuple[Attempt, ...] = ()
    attempt_started_at: str | None = None
    prior_attempt_started_at: str | None = None
    retry_of: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.task_id, self.owner, self.created_at)

    def to_public(self) -> dict[str, Any]:
        """The task as clients see it (``/state``, the stream, callbacks' source): see views.py."""
        out: dict[str, Any] = to_json(public_task(self))
        return out

    def callback_payload(self) -> dict[str, Any]:
        """The JSON a callback receiver gets when the task ends."""
        return {
            "task_id": self.task_id,
            "name": jsonsafe.printable(self.name),
            "status": self.status.value,
            "result": served("result", self.result),
            "error": self.error.to_dict() if self.error else None,
            "attempts": self.attempts,
            "metadata": served("metadata", self.metadata),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Expect:
    """The condition a stored change is made under (a conditional write).

    ``statuses``: the task's status must be one of these.
    ``attempts``: the task's attempt counter must equal this (the claim a worker holds).
    ``segments``: the task's segment counter must equal this (the segment a worker runs).
    ``handed_over``: True, the task must be waiting between two segments; False, it must not.
    ``lease_expired_before``: alternatively a RUNNING task whose lease ended before this time.
    """

    statuses: frozenset[TaskStatus]
    attempts: int | None = None
    lease_expired_before: str | None = None
    segments: int | None = None
    handed_over: bool | None = None

    @classmethod
    def into(
        cls,
        status: TaskStatus,
        *,
        only: frozenset[TaskStatus] | None = None,
        attempts: int | None = None,
        segments: int | None = None,
        handed_over: bool | None = None,
        lease_expired_before: str | None = None,
    ) -> Expect:
        """The condition of a write that moves a task to ``status``: from any status
        ALLOWED_TRANSITIONS lets into it, or only from ``only``, each of which it must let
        (so no write can move a task the table forbids; a ValueError is a bug in the caller)."""
        allowed = frozenset(source for source, targets in ALLOWED_TRANSITIONS.items() if status in targets)
        sources = allowed if only is None else only
        if not sources or not sources <= allowed:
            forbidden = ", ".join(sorted(sources - allowed)) or "nothing"
            raise ValueError(f"no write may move a task from {forbidden} to {status}")
        return cls(
            sources,
            attempts=attempts,
            segments=segments,
            handed_over=handed_over,
            lease_expired_before=lease_expired_before,
        )

    def holds_for(self, task: Task) -> bool:
        if (
            task.status in self.statuses
            and (self.attempts is None or task.attempts == self.attempts)
            and (self.segments is None or task.segments == self.segments)
            and (self.handed_over is None or (task.handed_over_at is not None) == self.handed_over)
        ):
            return True
        return (
            self.lease_expired_before is not None
            and task.status is TaskStatus.RUNNING
            and task.lease_expires_at is not None
            and task.lease_expires_at < self.lease_expired_before
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[Task]
    cursor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A record stored by the ``message`` task type (seed 002's messages)."""

    message_id: str
    owner: str
    content: str
    task_id: str
    created_at: str

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "content": self.content,
            "task_id": self.task_id,
            "created_at": self.created_at,
        }


def terminal_changes(status: TaskStatus, now: str, *, error: TaskError | None, result: Any = None) -> dict[str, Any]:
    return {
        "status": status,
        "result": result,
        "error": error,
        "completed_at": now,
        "updated_at": now,
        "lease_expires_at": None,
        "next_attempt_at": None,
        "due_at": None,
        "checkpoint": None,
        "handed_over_at": None,
    }


def new_message(owner: str, content: str, task_id: str, now: datetime) -> Message:
    stamp = iso(now)
    return Message(
        message_id=f"{stamp}#{uuid.uuid4().hex[:12]}", owner=owner, content=content, task_id=task_id, created_at=stamp
    )
