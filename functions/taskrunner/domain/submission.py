"""The API's use cases: submit (and retry), get, list, cancel.

Every state change is a conditional write (``Expect``), so duplicate requests and concurrent
cancels can never produce a lost update or an illegal transition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from . import jsonsafe
from .attempts import AttemptOutcome, attempt_entry, attempt_history
from .errors import (
    ConditionFailedError,
    DependencyUnavailableError,
    EgressDeniedError,
    IdempotencyConflictError,
    InvalidParametersError,
    InvalidTransitionError,
    TaskAlreadyExistsError,
    TaskNotFoundError,
)
from .models import (
    ACTIVE_STATUSES,
    CallbackState,
    Expect,
    Task,
    TaskPage,
    TaskStatus,
    after,
    iso,
    terminal_changes,
)
from .policy import Policy, SystemClock
from .ports import (
    Clock,
    NullTelemetry,
    TaskCatalog,
    TaskQueue,
    TaskRepository,
    TaskType,
    Telemetry,
)

logger = logging.getLogger(__name__)

# what POST /api/tasks/{id}/retry runs again
RETRYABLE_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})


def request_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _require_safe_json(name: str, fields: Mapping[str, Any]) -> None:
    for field, value in fields.items():
        try:
            jsonsafe.check(value)
        except jsonsafe.UnsafeJsonError as exc:
            where = jsonsafe.describe((field, *exc.path))
            loc = ["body", field, *[jsonsafe.printable(p) if isinstance(p, str) else p for p in exc.path]]
            problem = {"loc": loc, "msg": f"{where}: {exc.reason}", "type": exc.kind}
            raise InvalidParametersError(name, [problem]) from None


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitRequest:
    name: str
    parameters: dict[str, Any]
    callback_url: str | None = None
    delay_seconds: int = 0
    max_attempts: int | None = None
    timeout_seconds: int | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    priority: bool = False
    max_runtime_seconds: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitResult:
    task: Task
    created: bool


class TaskService:
    """The API's use cases."""

    def __init__(
        self,
        repository: TaskRepository,
        queue: TaskQueue,
        catalog: TaskCatalog,
        *,
        policy: Policy | None = None,
        clock: Clock | None = None,
        id_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
        url_check: Callable[[str], None] | None = None,
        parameter_url_check: Callable[[str], None] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._repo = repository
        self._parameter_url_check = parameter_url_check
        self._queue = queue
        self._catalog = catalog
        self._policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._new_id = id_factory
        self._url_check = url_check
        self._telemetry = telemetry or NullTelemetry()

    @property
    def catalog(self) -> TaskCatalog:
        return self._catalog

    def _check_parameter_urls(self, task_type: TaskType, parameters: Mapping[str, Any]) -> None:
        """A URL parameter the egress guard will refuse when the task runs is refused now."""
        if self._parameter_url_check is None:
            return
        for field in task_type.url_parameters:
            value = parameters.get(field)
            if not isinstance(value, str):
                continue
            try:
                self._parameter_url_check(value)
            except EgressDeniedError as exc:
                error = {"loc": ["body", "parameters", field], "msg": str(exc), "type": "url_not_allowed"}
                raise InvalidParametersError(task_type.name, [error]) from None

    def _check_runtime(self, task_type: TaskType, parameters: Mapping[str, Any], asked: int | None) -> None:
        """``max_runtime_seconds`` within the limit, and enough for what the parameters need."""
        p = self._policy
        runtime = asked if asked is not None else min(p.default_max_runtime_seconds, p.max_runtime_limit_seconds)
        problem = None
        if runtime > p.max_runtime_limit_seconds:
            problem = f"max_runtime_seconds is {runtime}; the limit is {p.max_runtime_limit_seconds}"
        else:
            needed = task_type.runtime_needed(parameters)
            if needed is not None and needed > runtime:
                problem = (
                    f"{task_type.name} with these parameters runs at least {needed:g} s; max_runtime_seconds is "
                    f"{runtime} (the limit is {p.max_runtime_limit_seconds})"
                )
        if problem is not None:
            error = {"loc": ["body", "max_runtime_seconds"], "msg": problem, "type": "max_runtime"}
            raise InvalidParametersError(task_type.name, [error])

    def submit(
        self, owner: str, request: SubmitRequest, *, idempotency_key: str | None = None, retry_of: str | None = None
    ) -> SubmitResult:
        # Valid, bounded JSON only: checked before anything (the idempotency hash too) reads it.
        _require_safe_json(request.name, {"parameters": request.parameters, "metadata": request.metadata})
        task_type = self._catalog.get(request.name)
        parameters = task_type.validate(request.parameters)
        _require_safe_json(request.name, {"parameters": parameters})
        if request.callback_url is not None and self._url_check is not None:
            self._url_check(request.callback_url)
        self._check_parameter_urls(task_type, parameters)
        self._check_runtime(task_type, parameters, request.max_runtime_seconds)
        digest = None
        if idempotency_key is not None:
            fields = dataclasses.asdict(request)
            if retry_of is not None:
                fields["retry_of"] = retry_of  # a retry of another task is another request
            digest = request_hash(fields)
            earlier = self._repo.find_by_idempotency_key(owner, idempotency_key)
            if earlier is not None:
                return self._replay(owner, idempotency_key, digest, earlier)
        task = self._new_task(owner, request, parameters, task_type.queue, task_type.timeout_seconds, idempotency_key)
        if retry_of is not None:
            task = dataclasses.replace(task, retry_of=retry_of)
        try:
            self._repo.create(task, idempotency_hash=digest)
        except TaskAlreadyExistsError:
            if idempotency_key is None:
                raise
            earlier = self._repo.find_by_idempotency_key(owner, idempotency_key)
            if earlier is None:
                raise
            return self._replay(owner, idempotency_key, digest or "", earlier)
        try:
            self._queue.enqueue(task, delay_seconds=request.delay_seconds)
        except DependencyUnavailableError as exc:
            # The task is stored PENDING; the reconciler sends its message once it is due.
            self._telemetry.task_event("enqueue_failed_left_for_reconciler", task, error=str(exc))
        extra = {"retry_of": retry_of} if retry_of is not None else {}
        self._telemetry.task_event("submitted", task, queue=task.queue, priority=task.priority, **extra)
        self._telemetry.metric("TasksSubmitted", 1, task_type=task.name)
        return SubmitResult(task=task, created=True)

    def retry(self, owner: str, task_id: str, *, idempotency_key: str | None = None) -> SubmitResult:
        """Run a FAILED or CANCELLED task again as a new task (``retry_of`` names the old one)
        with the same type, parameters, callback, metadata and limits, through submit's path."""
        old = self.get(owner, task_id)
        if old.status not in RETRYABLE_STATUSES:
            raise InvalidTransitionError(task_id, old.status.value, "retry (only FAILED or CANCELLED tasks can be)")
        request = SubmitRequest(
            name=old.name,
            parameters=dict(old.parameters),
            callback_url=old.callback.url if old.callback else None,
            max_attempts=old.max_attempts,
            timeout_seconds=old.timeout_seconds,
            metadata=dict(old.metadata),
            priority=old.priority,
            max_runtime_seconds=old.max_runtime_seconds,
        )
        return self.submit(owner, request, idempotency_key=idempotency_key, retry_of=old.task_id)

    def _replay(self, owner: str, key: str, digest: str, earlier: tuple[str, str]) -> SubmitResult:
        task_id, earlier_digest = earlier
        if earlier_digest != digest:
            raise IdempotencyConflictError(key)
        return SubmitResult(task=self.get(owner, task_id), created=False)

    def _new_task(
        self,
        owner: str,
        request: SubmitRequest,
        parameters: dict[str, Any],
        queue: str,
        default_timeout: int,
        idempotency_key: str | None,
    ) -> Task:
        p = self._policy
        now = self._clock.now()
        timeout = min(request.timeout_seconds or default_timeout, p.max_timeout_seconds)
        attempts = min(request.max_attempts or p.default_max_attempts, p.max_attempts_limit)
        runtime = request.max_runtime_seconds or min(p.default_max_runtime_seconds, p.max_runtime_limit_seconds)
        return Task(
            task_id=self._new_id(),
            name=request.name,
            owner=owner,
            queue=queue,
            status=TaskStatus.PENDING,
            parameters=parameters,
            created_at=iso(now),
            updated_at=iso(now),
            max_attempts=attempts,
            timeout_seconds=timeout,
            delay_seconds=request.delay_seconds,
            priority=request.priority,
            metadata=dict(request.metadata),
            callback=CallbackState(url=request.callback_url) if request.callback_url else None,
            idempotency_key=idempotency_key,
            due_at=iso(after(now, request.delay_seconds + p.pending_grace_seconds)),
            max_runtime_seconds=runtime,
        )

    def get(self, owner: str, task_id: str) -> Task:
        task = self._repo.get(task_id)
        if task is None or task.owner != owner:
            raise TaskNotFoundError(task_id)
        return task

    def list(
        self,
        owner: str,
        *,
        status: TaskStatus | None = None,
        active: bool = False,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        statuses = [status] if status else (sorted(ACTIVE_STATUSES) if active else None)
        return self._repo.list(owner, statuses=statuses, name=name, limit=limit, cursor=cursor)

    def cancel(self, owner: str, task_id: str) -> Task:
        """PENDING/RETRYING -> CANCELLED now; RUNNING -> cancel requested; terminal -> error."""
        for _ in range(5):
            task = self.get(owner, task_id)
            now = iso(self._clock.now())
            try:
                if task.status in (TaskStatus.PENDING, TaskStatus.RETRYING):
                    cancelled = self._repo.update(
                        task.ref,
                        terminal_changes(TaskStatus.CANCELLED, now, error=None),
                        Expect.into(TaskStatus.CANCELLED, only=frozenset({task.status})),
                    )
                    self._telemetry.task_event("cancelled", cancelled)
                    self._telemetry.metric("TasksCancelled", 1, task_type=cancelled.name)
                    self._enqueue_callback(cancelled)
                    return cancelled
                if task.status is TaskStatus.RUNNING and task.handed_over_at is not None:
                    # between two segments nothing runs it: it ends now (and so does its attempt)
                    changes = terminal_changes(TaskStatus.CANCELLED, now, error=None)
                    entry = attempt_entry(task, AttemptOutcome.CANCELLED, now)
                    changes["attempt_history"] = attempt_history(task, self._policy.max_attempts_limit, entry)
                    cancelled = self._repo.update(
                        task.ref,
                        changes,
                        Expect.into(
                            TaskStatus.CANCELLED,
                            only=frozenset({TaskStatus.RUNNING}),
                            attempts=task.attempts,
                            segments=task.segments,
                            handed_over=True,
                        ),
                    )
                    self._telemetry.task_event("cancelled", cancelled, segments=cancelled.segments)
                    self._telemetry.metric("TasksCancelled", 1, task_type=cancelled.name)
                    self._enqueue_callback(cancelled)
                    return cancelled
                if task.status is TaskStatus.RUNNING:
                    if task.cancel_requested:
                        return task
                    requested = self._repo.update(
                        task.ref,
                        {"cancel_requested": True, "updated_at": now},
                        Expect(frozenset({TaskStatus.RUNNING})),
                    )
                    self._telemetry.task_event("cancel_requested", requested)
                    return requested
            except ConditionFailedError:
                continue  # it moved on under us: look again
            raise InvalidTransitionError(task_id, task.status.value, "cancel")
        raise ConditionFailedError(task_id)

    def _enqueue_callback(self, cancelled: Task) -> None:
        if cancelled.callback is None:
            return
        # the task has ended: its callback goes out like any other's
        try:
            self._queue.enqueue_callback(cancelled.task_id)
        except DependencyUnavailableError as exc:
            # the cancel itself stands; say loudly that its callback did not go
            self._telemetry.task_event("callback_not_enqueued", cancelled, error=str(exc))
            self._telemetry.metric("CallbacksFailed", 1, task_type=cancelled.name)
