"""The ports the domain needs, as Protocols. Adapters implement them; tests use fakes."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from .models import Expect, Message, Task, TaskPage, TaskRef, TaskStatus


class Clock(Protocol):
    """Time as the domain reads it, nowhere else: the wall clock, a monotonic reading for
    deadlines and durations, and a pause that ends early when an event is set."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float:
        """Seconds that never go back (only differences between two readings mean anything)."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Pause up to ``seconds``, ending as soon as ``event`` is set; return whether it is set."""


class TaskRepository(Protocol):
    def create(self, task: Task, *, idempotency_hash: str | None = None) -> None:
        """Store a new task. With ``task.idempotency_key`` set, the key is stored in the same
        atomic write; raises TaskAlreadyExistsError if the id or the key exists."""

    def get(self, task_id: str) -> Task | None: ...

    def find_by_idempotency_key(self, owner: str, key: str) -> tuple[str, str] | None:
        """(task_id, request hash) of an earlier submission with this key, if any."""

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
        """Apply ``changes`` (Task field -> value) if ``expect`` holds; bump ``version``;
        return the stored task (``current``, if given, is the caller's latest copy, which the
        store may use to answer more cheaply). Raises TaskNotFoundError or ConditionFailedError."""

    def list(
        self,
        owner: str,
        *,
        statuses: Iterable[TaskStatus] | None,
        name: str | None,
        limit: int,
        cursor: str | None,
    ) -> TaskPage: ...

    def due(self, before: str, limit: int) -> builtins.list[Task]:
        """Non-terminal tasks whose ``due_at`` is before ``before`` (for the reconciler)."""

    def ping(self) -> None:
        """Raise DependencyUnavailableError when the store does not answer."""


class TaskQueue(Protocol):
    def enqueue(self, task: Task, *, delay_seconds: int = 0, continuation: bool = False) -> None:
        """Send the task's id to the queue of its type (or the priority queue). A
        ``continuation`` message carries the attempt and segment it continues: only the task
        waiting between exactly those segments is claimed by it."""

    def enqueue_callback(self, task_id: str, *, delay_seconds: int = 0) -> None: ...

    def change_visibility(self, source_arn: str, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again after ``seconds`` (retry backoff)."""

    def ping(self) -> None: ...


class MessageStore(Protocol):
    def add(self, message: Message) -> None: ...

    def list(self, owner: str, *, limit: int, cursor: str | None) -> tuple[builtins.list[Message], str | None]: ...


class HttpResponse(Protocol):
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpClient(Protocol):
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        """Send one request, refusing destinations the egress policy denies."""


class CallbackSender(Protocol):
    def send(self, url: str, payload: bytes, *, message_id: str, timeout: float, owner: str = "") -> int:
        """POST a callback signed with ``owner``'s secret; return the receiver's status code."""


class TaskContext(Protocol):
    """What a running task can use: progress, cancellation and time checks, services."""

    task_id: str
    attempt: int
    owner: str

    def progress(self, percent: float, message: str | None = None) -> None: ...

    def check(self) -> None:
        """Raise TaskCancelledError or TaskTimeoutError if the task must stop now."""

    def sleep(self, seconds: float) -> None:
        """Sleep, checking for cancellation and the deadline meanwhile."""

    def checkpoint(self, state: Any) -> None:
        """Save a small JSON state to resume from: in a fresh worker invocation when this one
        is about to end (a new segment), or on the next attempt after a crash or an error."""

    @property
    def resume_state(self) -> Any:
        """The state last saved with ``checkpoint`` (by an earlier segment or attempt), or None."""

    @property
    def messages(self) -> MessageStore: ...

    @property
    def http(self) -> HttpClient: ...


class TaskType(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def queue(self) -> str: ...

    @property
    def timeout_seconds(self) -> int: ...

    @property
    def url_parameters(self) -> tuple[str, ...]:
        """Parameters holding a URL the task will call: checked by the egress guard at submit."""

    @property
    def permanent_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions of the type's own code that another attempt cannot fix (not retried)."""

    @property
    def checkpoints(self) -> bool:
        """Whether the type saves checkpoints (so may run longer than one worker invocation)."""

    def runtime_needed(self, parameters: Mapping[str, Any]) -> float | None:
        """The running time the (validated) parameters need at least, if the type knows it."""

    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalised parameters or raise InvalidParametersError."""

    def run(self, parameters: Mapping[str, Any], context: TaskContext) -> Any: ...

    def parameters_schema(self) -> dict[str, Any]: ...


class Telemetry(Protocol):
    """Structured logs and metrics of what happens to tasks (Powertools on AWS)."""

    def task_event(self, event: str, task: Task, **fields: Any) -> None:
        """Log one step of a task's life (with its id, type and status)."""

    def metric(self, name: str, value: float, *, unit: str = "Count", task_type: str | None = None) -> None: ...


class NullTelemetry:
    def task_event(self, event: str, task: Task, **fields: Any) -> None:
        return None

    def metric(self, name: str, value: float, *, unit: str = "Count", task_type: str | None = None) -> None:
        return None


class TaskCatalog(Protocol):
    def get(self, name: str) -> TaskType:
        """Raise UnknownTaskTypeError for a name that is not registered."""

    def names(self) -> builtins.list[str]: ...

    def all(self) -> Sequence[TaskType]: ...
