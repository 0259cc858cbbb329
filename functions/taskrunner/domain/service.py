"""Use cases: submit, get, list, cancel (API); run (worker); deliver (notifier); reconcile.

Every state change is a conditional write (``Expect``), so duplicate deliveries, crashed
workers and concurrent cancels can never produce a lost update or an illegal transition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from . import jsonsafe
from .attempts import Attempt, AttemptOutcome
from .errors import (
    CheckpointError,
    ConditionFailedError,
    DependencyUnavailableError,
    EgressDeniedError,
    IdempotencyConflictError,
    InvalidParametersError,
    InvalidTransitionError,
    MaxRuntimeExceededError,
    SegmentEndedError,
    TaskAlreadyExistsError,
    TaskCancelledError,
    TaskNotFoundError,
    TaskRunnerError,
    TaskTimeoutError,
    invocation_ended,
)
from .models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CallbackState,
    CallbackStatus,
    Expect,
    Message,
    Progress,
    Task,
    TaskError,
    TaskPage,
    TaskRef,
    TaskStatus,
    after,
    iso,
    parse_iso,
)
from .ports import (
    CallbackSender,
    Clock,
    HttpClient,
    MessageStore,
    NullTelemetry,
    TaskCatalog,
    TaskQueue,
    TaskRepository,
    TaskType,
    Telemetry,
)
from .receivers import ReceiverHealth

logger = logging.getLogger(__name__)


RETRYABLE_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})


class NonRetryableError(TaskRunnerError):
    """A task failure that another attempt cannot fix (bad input, result too large...)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """Operational limits and timings; built from Settings by the composition root."""

    default_max_attempts: int = 3
    max_attempts_limit: int = 10
    max_timeout_seconds: int = 840
    pending_grace_seconds: int = 120
    lease_grace_seconds: int = 30
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 300.0
    result_max_bytes: int = 256 * 1024
    progress_min_interval_seconds: float = 1.0
    callback_max_attempts: int = 8
    callback_base_seconds: float = 30.0
    callback_cap_seconds: float = 3600.0
    callback_timeout_seconds: float = 10.0
    stop_margin_seconds: float = 5.0
    default_max_runtime_seconds: int = 86_400
    max_runtime_limit_seconds: int = 86_400
    checkpoint_max_bytes: int = 32 * 1024


class SystemClock:
    def now(self) -> datetime:
        from .models import utcnow

        return utcnow()


def backoff_seconds(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> int:
    """Exponential backoff with 'equal jitter': between half and all of min(cap, base*2^(n-1))."""
    ceiling: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return max(1, round(ceiling / 2 + rand() * ceiling / 2))


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
                        _terminal_changes(TaskStatus.CANCELLED, now, error=None),
                        Expect(frozenset({task.status})),
                    )
                    self._telemetry.task_event("cancelled", cancelled)
                    self._telemetry.metric("TasksCancelled", 1, task_type=cancelled.name)
                    self._enqueue_callback(cancelled)
                    return cancelled
                if task.status is TaskStatus.RUNNING and task.handed_over_at is not None:
                    # between two segments nothing runs it: it ends now (and so does its attempt)
                    changes = _terminal_changes(TaskStatus.CANCELLED, now, error=None)
                    entry = attempt_entry(task, AttemptOutcome.CANCELLED, now)
                    changes["attempt_history"] = attempt_history(task, self._policy.max_attempts_limit, entry)
                    cancelled = self._repo.update(
                        task.ref,
                        changes,
                        Expect(
                            frozenset({TaskStatus.RUNNING}),
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


def _terminal_changes(status: TaskStatus, now: str, *, error: TaskError | None, result: Any = None) -> dict[str, Any]:
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


def _ms_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    try:
        return round((parse_iso(end) - parse_iso(start)).total_seconds() * 1000)
    except ValueError:
        return None


def _outcome_for(exc: BaseException | None, outcome: AttemptOutcome) -> AttemptOutcome:
    if isinstance(exc, (TaskTimeoutError, MaxRuntimeExceededError)):
        return AttemptOutcome.TIMED_OUT
    return outcome


def attempt_entry(
    task: Task,
    outcome: AttemptOutcome,
    now: str,
    *,
    error: TaskError | None = None,
    exc: BaseException | None = None,
) -> Attempt:
    """The entry of ``task``'s current attempt (the one its claim started), ending ``now``."""
    started = task.attempt_started_at or (task.started_at if task.attempts == 1 else None)
    return Attempt.ended(
        task.attempts,
        outcome,
        started_at=started,
        ended_at=now,
        duration_ms=_ms_between(started, now),
        segments=task.segments,
        error_type=error.type if error else None,
        message=error.message if error else None,
        exc=exc,
    )


def attempt_history(task: Task, limit: int, entry: Attempt | None = None) -> tuple[Attempt, ...]:
    """``task``'s history, with an entry for each earlier attempt that ended without one (its
    worker vanished; this attempt's claim took the task over once the lease had run out: LOST),
    then ``entry``; the last ``limit`` entries."""
    entries = list(task.attempt_history)
    last = max((e.number for e in entries), default=0)
    # the claim kept the start of the attempt it replaced: unknown (None), that attempt ended
    # before attempts were recorded, and nothing is made up for it
    missing = range(last + 1, task.attempts) if task.prior_attempt_started_at else range(0)
    for number in missing:
        latest = number == task.attempts - 1  # the one whose start the claim kept
        started = task.prior_attempt_started_at if latest else None
        ended = task.attempt_started_at if latest else None
        entries.append(
            Attempt.ended(
                number,
                AttemptOutcome.LOST,
                started_at=started,
                ended_at=ended,
                duration_ms=_ms_between(started, ended),
                segments=task.segments - 1 if latest else None,
                error_type="WorkerLost",
                message="the worker stopped without recording an outcome; the task was claimed again "
                "once its lease had run out",
            )
        )
    if entry is not None:
        entries.append(entry)
    return tuple(entries[-max(1, limit) :])


@dataclasses.dataclass(frozen=True, slots=True)
class RunOutcome:
    """What the worker does with the message: delete it, or let it come back later."""

    done: bool
    retry_after_seconds: int = 0
    task: Task | None = None

    @classmethod
    def finished(cls, task: Task | None = None) -> RunOutcome:
        return cls(done=True, task=task)

    @classmethod
    def later(cls, seconds: int, task: Task | None = None) -> RunOutcome:
        return cls(done=False, retry_after_seconds=max(0, seconds), task=task)


class _RunContext:
    """The TaskContext handed to a running task: one segment of one attempt.

    Three clocks bound it (all ``time.monotonic``): the segment's end (what is left of the
    worker invocation, or of the task's ``max_runtime_seconds`` if that comes first); the
    task's ``timeout_seconds``, counted from the segment's start and again from each
    checkpoint; and nothing else. At the segment's end a task that has checkpointed gets
    SegmentEndedError (the worker hands it on), one that has not gets InvocationEndedError.
    """

    def __init__(
        self,
        task: Task,
        repo: TaskRepository,
        clock: Clock,
        *,
        segment_seconds: float,
        runtime_limited: bool,
        policy: Policy,
        messages: MessageStore,
        http: HttpClient,
    ) -> None:
        self.task_id = task.task_id
        self._ref = task.ref
        self.attempt = task.attempts
        self.segment = task.segments
        self.owner = task.owner
        self._task = task
        self._repo = repo
        self._clock = clock
        self._started = time.monotonic()
        self._segment_end = self._started + segment_seconds
        self._runtime_limited = runtime_limited
        self._timeout = float(task.timeout_seconds)
        self._timeout_end = self._started + self._timeout
        self._lease_until = self.hard_deadline()  # what the claim's lease (less its grace) covers
        self._policy = policy
        self._min_interval = policy.progress_min_interval_seconds
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._pending: tuple[float, str | None] | None = None
        self._pending_checkpoint: tuple[Any] | None = None
        self._resume = task.checkpoint
        self.checkpointed = task.checkpoint is not None
        self._cancelled = False
        self._abandoned = threading.Event()
        self._messages = messages
        self._http = http

    @property
    def messages(self) -> MessageStore:
        return self._messages

    @property
    def http(self) -> HttpClient:
        return self._http

    @property
    def resume_state(self) -> Any:
        return self._resume

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def abandon(self) -> None:
        """Called by the worker when it gave up waiting; the task's next check stops it."""
        self._abandoned.set()

    def hard_deadline(self) -> float:
        """When the worker stops waiting for the task (monotonic)."""
        return min(self._segment_end, self._timeout_end)

    def progress(self, percent: float, message: str | None = None) -> None:
        self.check()
        percent = max(0.0, min(100.0, float(percent)))
        with self._lock:
            self._pending = (percent, message)
        if time.monotonic() - self._last_write >= self._min_interval:
            self._flush()
        self.check()

    def checkpoint(self, state: Any) -> None:
        self.check()
        try:
            value = jsonsafe.normalise(state)
        except jsonsafe.UnsafeJsonError as exc:
            raise CheckpointError(f"checkpoint state is not valid, bounded JSON: {exc}") from None
        size = len(json.dumps(value, separators=(",", ":")).encode())
        limit = self._policy.checkpoint_max_bytes
        if size > limit:
            raise CheckpointError(
                f"checkpoint state is {size} bytes as JSON; the limit is {limit} bytes "
                "(keep large state elsewhere, e.g. in S3, and checkpoint its key)"
            )
        with self._lock:
            self._pending_checkpoint = (value,)
            self.checkpointed = True
            self._timeout_end = time.monotonic() + self._timeout
        if time.monotonic() - self._last_write >= self._min_interval:
            self._flush()
        self.check()

    def take_pending(self, now: str) -> dict[str, Any]:
        """The progress and checkpoint not yet written, as changes (and forget them)."""
        changes: dict[str, Any] = {}
        with self._lock:
            if self._pending is not None:
                percent, message = self._pending
                changes["progress"] = Progress(round(percent, 2), message)
            if self._pending_checkpoint is not None:
                changes["checkpoint"] = self._pending_checkpoint[0]
                changes["checkpointed_at"] = now
            self._pending = None
            self._pending_checkpoint = None
        return changes

    def _flush(self) -> None:
        if self._abandoned.is_set():
            return  # the worker has moved on (handed over, or gave up): no more writes
        now = self._clock.now()
        changes = self.take_pending(iso(now))
        if not changes:
            return
        self._last_write = time.monotonic()
        # A task that checkpoints may run past the lease its claim wrote (its timeout restarts
        # at each checkpoint): the lease keeps ahead of when the worker would stop waiting,
        # moved a timeout further each time (about one lease write per timeout, not per write),
        # so a live segment is never taken for a crashed one and a crash is still seen soon.
        deadline = self.hard_deadline()
        if deadline > self._lease_until:
            target = min(self._segment_end, deadline + self._timeout)
            lease = iso(after(now, target - time.monotonic() + self._policy.lease_grace_seconds))
            changes["lease_expires_at"] = lease
            changes["due_at"] = lease
            self._lease_until = target
        changes["updated_at"] = iso(now)
        try:
            task = self._repo.update(
                self._ref,
                changes,
                segment_running(self.attempt, self.segment),
            )
        except ConditionFailedError:
            # Our claim is gone (lease lost, task reclaimed): stop working on it.
            self._abandoned.set()
            return
        self._cancelled = task.cancel_requested

    def expired(self) -> TaskRunnerError | None:
        """Why the task must stop now for lack of time, if it must."""
        now = time.monotonic()
        if now > self._timeout_end and self._timeout_end <= self._segment_end:
            return TaskTimeoutError(self._timeout)
        if now > self._segment_end:
            if self._runtime_limited:
                return MaxRuntimeExceededError(self._task.max_runtime_seconds, self.segment)
            if self.checkpointed:
                return SegmentEndedError(now - self._started)
            return invocation_ended(now - self._started, self._timeout)
        return None

    def check(self) -> None:
        if self._abandoned.is_set():
            raise TaskCancelledError("the worker stopped waiting for this attempt")
        if self._cancelled:
            raise TaskCancelledError("cancelled by request")
        stop = self.expired()
        if stop is not None:
            raise stop

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            if (
                self._pending is not None or self._pending_checkpoint is not None
            ) and time.monotonic() - self._last_write >= self._min_interval:
                self._flush()
            time.sleep(min(left, 0.1))


def segment_running(attempt: int, segment: int) -> Expect:
    """The condition of every write a running segment makes: its claim still holds (same
    attempt and segment) and it has not handed the task on."""
    return Expect(frozenset({TaskStatus.RUNNING}), attempts=attempt, segments=segment, handed_over=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Continuation:
    """What a continuation message carries: the attempt and segment it continues."""

    attempt: int
    segment: int
    handed_over_at: str | None = None


class WorkerService:
    """Runs one delivery of a task message: claim, run, record the outcome.

    Long jobs: a task that has checkpointed and reaches the end of its worker invocation is
    handed on (a new *segment*, not a new attempt): its checkpoint is stored, it stays RUNNING
    with ``handed_over_at`` set, and a continuation message starts the next segment in a fresh
    invocation, which claims only the task still waiting after exactly that segment.
    """

    def __init__(
        self,
        repository: TaskRepository,
        queue: TaskQueue,
        catalog: TaskCatalog,
        messages: MessageStore,
        http: HttpClient,
        *,
        policy: Policy | None = None,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._catalog = catalog
        self._messages = messages
        self._http = http
        self._policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._rand = rand
        self._telemetry = telemetry or NullTelemetry()

    def run(
        self,
        ref: TaskRef,
        *,
        remaining_seconds: float = 900.0,
        timeout_hint: float | None = None,
        continuation: Continuation | None = None,
        invocation_seconds: float | None = None,
    ) -> RunOutcome:
        """Run one delivery. ``timeout_hint`` (from the message) sizes the claim's lease;
        ``invocation_seconds``: the time a fresh invocation has (what was left when this one
        started), so a record is handed back only when a fresh invocation would do better (a
        worker whose whole invocation is shorter than the task's timeout runs it for what it has)."""
        p = self._policy
        task_id = ref.task_id
        now = self._clock.now()
        budget = max(1.0, remaining_seconds - p.stop_margin_seconds)
        # unknown: assume a fresh invocation gives any task its whole timeout
        fresh = math.inf if invocation_seconds is None else max(budget, invocation_seconds - p.stop_margin_seconds)
        if timeout_hint and timeout_hint > budget and fresh > budget + 1:
            # What is left of this invocation (later records of a batch) cannot give the task
            # its whole timeout: leave it unclaimed, attempt unspent, for a fresh invocation.
            logger.info(
                "not enough time left in this invocation; task handed back",
                extra={"task_id": task_id, "timeout_seconds": timeout_hint, "remaining_seconds": remaining_seconds},
            )
            return RunOutcome.later(0)
        run_for = max(1.0, min(float(timeout_hint or p.max_timeout_seconds), budget))
        lease = iso(after(now, run_for + p.lease_grace_seconds))
        claim = {
            "status": TaskStatus.RUNNING,
            "started_at": iso(now),
            "updated_at": iso(now),
            "lease_expires_at": lease,
            "due_at": lease,
            "next_attempt_at": None,
            "handed_over_at": None,
            "attempt_started_at": iso(now),
        }
        try:
            # The claim: one conditional write that also returns the task (no read first).
            if continuation is None:
                task = self._repo.update(
                    ref,
                    claim,
                    Expect(frozenset({TaskStatus.PENDING, TaskStatus.RETRYING}), lease_expired_before=iso(now)),
                    increment_attempts=True,
                    increment_segments=True,
                )
            else:
                del claim["status"], claim["started_at"], claim["next_attempt_at"], claim["attempt_started_at"]
                task = self._repo.update(
                    ref,
                    claim,
                    Expect(
                        frozenset({TaskStatus.RUNNING}),
                        attempts=continuation.attempt,
                        segments=continuation.segment,
                        handed_over=True,
                    ),
                    increment_segments=True,
                )
        except TaskNotFoundError:
            logger.warning("message for unknown task dropped", extra={"task_id": task_id})
            return RunOutcome.finished()
        except ConditionFailedError as exc:
            current = exc.current if isinstance(exc.current, Task) else self._repo.get(task_id)
            if current is None:
                return RunOutcome.finished()
            if current.is_terminal:
                self._ensure_callback(current)
                return RunOutcome.finished(current)
            if continuation is not None:
                # Another delivery of this hand-over already started the next segment (or the
                # task was reclaimed after a crash): that one carries the task.
                self._telemetry.task_event(
                    "continuation_dropped", current, attempt=continuation.attempt, segment=continuation.segment
                )
                return RunOutcome.finished(current)
            # Another delivery holds a live claim: look again once its lease has run out.
            wait = p.lease_grace_seconds
            if current.lease_expires_at:
                wait = int((parse_iso(current.lease_expires_at) - now).total_seconds()) + 1
            return RunOutcome.later(max(1, min(wait, 43_000)), current)
        waited_ms = max(0.0, (now - parse_iso(task.created_at)).total_seconds() * 1000)
        if continuation is None:
            self._telemetry.task_event(
                "started", task, attempt=task.attempts, segment=task.segments, queue_wait_ms=round(waited_ms)
            )
            self._telemetry.metric("TasksStarted", 1, task_type=task.name)
            if task.attempts == 1:
                self._telemetry.metric("QueueWait", waited_ms, unit="Milliseconds", task_type=task.name)
        else:
            fields: dict[str, Any] = {"attempt": task.attempts, "segment": task.segments}
            if continuation.handed_over_at:
                gap = (now - parse_iso(continuation.handed_over_at)).total_seconds() * 1000
                fields["hand_over_gap_ms"] = round(gap)
                self._telemetry.metric("HandOverGap", gap, unit="Milliseconds", task_type=task.name)
            self._telemetry.task_event("segment_started", task, **fields)
            self._telemetry.metric("SegmentsStarted", 1, task_type=task.name)
        if task.attempts > task.max_attempts:
            return self._finish_failed(
                task,
                TaskError(
                    "AttemptsExhausted",
                    f"no attempt finished within {task.max_attempts} attempts (worker lost or timed out)",
                ),
            )
        if task.cancel_requested:
            return self._finish(task, TaskStatus.CANCELLED, error=None)
        runtime_left = task.max_runtime_seconds - (now - parse_iso(task.started_at or iso(now))).total_seconds()
        if runtime_left <= 0:
            error = MaxRuntimeExceededError(task.max_runtime_seconds, task.segments - 1)
            return self._finish_failed(task, TaskError(type(error).__name__, str(error)), exc=error)
        return self._execute(task, budget, runtime_left)

    def _execute(self, task: Task, budget: float, runtime_left: float) -> RunOutcome:
        p = self._policy
        try:
            task_type = self._catalog.get(task.name)
            parameters = task_type.validate(task.parameters)
        except (TaskRunnerError, InvalidParametersError) as exc:
            return self._finish_failed(task, TaskError(type(exc).__name__, str(exc)), exc=exc)
        ctx = _RunContext(
            task,
            self._repo,
            self._clock,
            segment_seconds=min(budget, runtime_left),
            runtime_limited=runtime_left <= budget,
            policy=p,
            messages=self._messages,
            http=self._http,
        )
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = task_type.run(parameters, ctx)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"task-{task.task_id}", daemon=True)
        thread.start()
        # the deadline moves with each checkpoint: wait in slices
        while thread.is_alive() and time.monotonic() < ctx.hard_deadline() + 0.5:
            thread.join(min(0.25, max(0.01, ctx.hard_deadline() + 0.5 - time.monotonic())))
        if thread.is_alive():
            ctx.abandon()
            box["error"] = ctx.expired() or TaskTimeoutError(task.timeout_seconds)
        if "error" in box:
            failure: BaseException = box["error"]
            if isinstance(failure, SegmentEndedError):
                return self._hand_over(task, ctx)
            if isinstance(failure, TaskCancelledError):
                if ctx.abandoned:
                    return RunOutcome.finished()
                return self._finish(task, TaskStatus.CANCELLED, error=None)
            if isinstance(failure, TaskTimeoutError):
                return self._failure(task, failure, retryable=True)
            permanent = (
                NonRetryableError,
                InvalidParametersError,
                EgressDeniedError,
                MaxRuntimeExceededError,
                CheckpointError,
                ValueError,
                TypeError,
            )
            retryable = not isinstance(failure, permanent)
            if isinstance(failure, DependencyUnavailableError):
                retryable = True
            return self._failure(task, failure, retryable=retryable)
        try:
            result = jsonsafe.normalise(box.get("result"))
        except jsonsafe.UnsafeJsonError as exc:
            # never stored poisoned: the task fails, and saying why is the result
            return self._finish_failed(
                task, TaskError("InvalidResultError", f"task result is not valid, bounded JSON: {exc}")
            )
        encoded = json.dumps(result, separators=(",", ":"))
        if len(encoded.encode()) > p.result_max_bytes:
            return self._finish_failed(
                task,
                TaskError(
                    "ResultTooLargeError",
                    f"task result is {len(encoded.encode())} bytes as JSON; the limit is {p.result_max_bytes} bytes",
                ),
            )
        return self._finish(task, TaskStatus.COMPLETED, error=None, result=result)

    def _hand_over(self, task: Task, ctx: _RunContext) -> RunOutcome:
        """End this segment: store the checkpoint, leave the task RUNNING between segments and
        send the message that starts the next one in a fresh invocation."""
        ctx.abandon()  # the task's thread writes nothing more
        p = self._policy
        now = self._clock.now()
        due = iso(after(now, p.pending_grace_seconds))
        changes = ctx.take_pending(iso(now))
        changes.update(handed_over_at=iso(now), updated_at=iso(now), lease_expires_at=due, due_at=due)
        history = attempt_history(task, p.max_attempts_limit)
        if history != task.attempt_history:
            changes["attempt_history"] = history  # an earlier attempt lost: said as soon as known
        try:
            waiting = self._repo.update(
                task.ref,
                changes,
                segment_running(task.attempts, task.segments),
                current=task,
            )
        except ConditionFailedError:
            self._telemetry.task_event("claim_lost", task)
            return RunOutcome.finished()
        self._telemetry.task_event(
            "segment_ended",
            waiting,
            attempt=waiting.attempts,
            segment=waiting.segments,
            segment_ms=round(ctx.elapsed * 1000),
            progress=waiting.progress.percent,
        )
        self._telemetry.metric("SegmentsHandedOver", 1, task_type=task.name)
        if waiting.cancel_requested:
            return self._finish(waiting, TaskStatus.CANCELLED, error=None)
        try:
            self._queue.enqueue(waiting, continuation=True)
        except DependencyUnavailableError as exc:
            # stored as waiting: the reconciler sends the continuation once it is due
            self._telemetry.task_event("continuation_not_enqueued", waiting, error=str(exc))
        return RunOutcome.finished(waiting)

    def _failure(self, task: Task, exc: BaseException, *, retryable: bool) -> RunOutcome:
        error = TaskError(type(exc).__name__, str(exc) or type(exc).__name__)
        if not retryable or task.attempts >= task.max_attempts:
            return self._finish_failed(task, error, exc=exc)
        p = self._policy
        delay = backoff_seconds(task.attempts, p.retry_base_seconds, p.retry_cap_seconds, self._rand)
        now = self._clock.now()
        next_at = iso(after(now, delay))
        outcome = _outcome_for(exc, AttemptOutcome.RETRYING)
        entry = attempt_entry(task, outcome, iso(now), error=error, exc=exc)
        try:
            updated = self._repo.update(
                task.ref,
                {
                    "status": TaskStatus.RETRYING,
                    "error": error,
                    "updated_at": iso(now),
                    "next_attempt_at": next_at,
                    "lease_expires_at": None,
                    "due_at": iso(after(now, delay + p.pending_grace_seconds)),
                    "attempt_history": attempt_history(task, p.max_attempts_limit, entry),
                },
                Expect(frozenset({TaskStatus.RUNNING}), attempts=task.attempts, segments=task.segments),
                current=task,
            )
        except ConditionFailedError:
            return RunOutcome.finished()
        self._telemetry.task_event(
            "retrying", updated, error_type=error.type, error=error.message, retry_in_seconds=delay
        )
        self._telemetry.metric("TasksRetried", 1, task_type=task.name)
        return RunOutcome.later(delay, updated)

    def _finish_failed(self, task: Task, error: TaskError, *, exc: BaseException | None = None) -> RunOutcome:
        return self._finish(task, TaskStatus.FAILED, error=error, exc=exc)

    def _finish(
        self,
        task: Task,
        status: TaskStatus,
        *,
        error: TaskError | None,
        result: Any = None,
        exc: BaseException | None = None,
    ) -> RunOutcome:
        now = iso(self._clock.now())
        changes = _terminal_changes(status, now, error=error, result=result)
        if status is TaskStatus.COMPLETED:
            changes["progress"] = Progress(100.0, "completed")
        outcome = _outcome_for(exc, AttemptOutcome(status.value))
        entry = attempt_entry(task, outcome, now, error=error, exc=exc)
        changes["attempt_history"] = attempt_history(task, self._policy.max_attempts_limit, entry)
        try:
            final = self._repo.update(
                task.ref,
                changes,
                Expect(frozenset({TaskStatus.RUNNING}), attempts=task.attempts, segments=task.segments),
                current=task,
            )
        except ConditionFailedError:
            # The claim was lost (lease expired and another delivery took over): its outcome wins.
            self._telemetry.task_event("claim_lost", task)
            return RunOutcome.finished()
        self._report_end(final)
        self._ensure_callback(final)
        return RunOutcome.finished(final)

    def _report_end(self, task: Task) -> None:
        metric = {
            TaskStatus.COMPLETED: "TasksCompleted",
            TaskStatus.FAILED: "TasksFailed",
            TaskStatus.CANCELLED: "TasksCancelled",
        }[task.status]
        fields: dict[str, Any] = {"attempts": task.attempts, "segments": task.segments}
        if task.error is not None:
            fields.update(error_type=task.error.type, error=task.error.message)
        if task.started_at and task.completed_at:
            duration = (parse_iso(task.completed_at) - parse_iso(task.started_at)).total_seconds() * 1000
            fields["duration_ms"] = round(duration)
            self._telemetry.metric("RunDuration", duration, unit="Milliseconds", task_type=task.name)
        self._telemetry.task_event(task.status.value.lower(), task, **fields)
        self._telemetry.metric(metric, 1, task_type=task.name)

    def _ensure_callback(self, task: Task) -> None:
        if task.callback is not None and task.callback.status in (CallbackStatus.PENDING,):
            self._queue.enqueue_callback(task.task_id)

    def fail_from_dead_letter(self, task_id: str, reason: str) -> Task | None:
        """A message reached the DLQ: the task ends FAILED with the reason (unless already terminal)."""
        for _ in range(3):
            task = self._repo.get(task_id)
            if task is None or task.is_terminal:
                return task
            now = iso(self._clock.now())
            error = TaskError("DeadLetterError", reason)
            changes = _terminal_changes(TaskStatus.FAILED, now, error=error)
            if task.status is TaskStatus.RUNNING and task.attempts > 0:
                # the running attempt ends here: recorded as such (under the claim it ran on)
                entry = attempt_entry(task, AttemptOutcome.FAILED, now, error=error)
                changes["attempt_history"] = attempt_history(task, self._policy.max_attempts_limit, entry)
            try:
                final = self._repo.update(task.ref, changes, Expect(frozenset(ACTIVE_STATUSES), attempts=task.attempts))
                break
            except ConditionFailedError:
                continue
        else:
            return self._repo.get(task_id)
        self._report_end(final)
        self._ensure_callback(final)
        return final


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    done: bool
    retry_after_seconds: int = 0
    status: CallbackStatus | None = None


class CallbackService:
    """Delivers a finished task's JSON to its callback URL and records how it went."""

    def __init__(
        self,
        repository: TaskRepository,
        sender: CallbackSender,
        *,
        policy: Policy | None = None,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        telemetry: Telemetry | None = None,
        receivers: ReceiverHealth | None = None,
    ) -> None:
        self._repo = repository
        self._sender = sender
        self._policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._rand = rand
        self._telemetry = telemetry or NullTelemetry()
        self._receivers = receivers or ReceiverHealth(
            lambda: self._clock.now().timestamp(),
            base_seconds=self._policy.callback_base_seconds,
            cap_seconds=min(600.0, self._policy.callback_cap_seconds),
        )

    def deliver(self, task_id: str, *, may_defer: bool = True) -> DeliveryOutcome:
        """One delivery attempt; ``may_defer``: a host in its cool-down is not tried now (no
        attempt counted) and the callback comes back when the cool-down ends."""
        p = self._policy
        task = self._repo.get(task_id)
        if task is None or task.callback is None or not task.is_terminal:
            return DeliveryOutcome(done=True)
        cb = task.callback
        if cb.status in (CallbackStatus.DELIVERED, CallbackStatus.FAILED):
            return DeliveryOutcome(done=True, status=cb.status)
        parts = urlsplit(cb.url)
        host = f"{parts.scheme}://{parts.netloc}"  # the receiver: one origin
        wait = self._receivers.cooling(host) if may_defer else 0.0
        if wait > 0:
            self._telemetry.task_event("callback_deferred", task, receiver=host, retry_in_seconds=math.ceil(wait))
            return DeliveryOutcome(done=False, retry_after_seconds=math.ceil(wait), status=cb.status)
        payload = json.dumps(task.callback_payload(), separators=(",", ":"), default=str).encode()
        attempt = cb.attempts + 1
        error: str | None = None
        code: int | None = None
        refused = False
        try:
            code = self._sender.send(
                cb.url, payload, message_id=f"msg_{task.task_id}", timeout=p.callback_timeout_seconds, owner=task.owner
            )
        except EgressDeniedError as exc:
            error, refused = str(exc), True
        except TaskRunnerError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = iso(self._clock.now())
        if code is not None and 200 <= code < 300:
            state = dataclasses.replace(
                cb, status=CallbackStatus.DELIVERED, attempts=attempt, last_error=None, delivered_at=now
            )
            self._record(task, state, now)
            self._receivers.delivered(host)
            self._telemetry.task_event("callback_delivered", task, callback_attempt=attempt, receiver_status=code)
            self._telemetry.metric("CallbacksDelivered", 1, task_type=task.name)
            return DeliveryOutcome(done=True, status=CallbackStatus.DELIVERED)
        if code is not None:
            error = f"receiver answered HTTP {code}"
        permanent = code == 410 or refused
        if not refused:
            self._receivers.failed(host)  # answered badly or not at all: the host counts against it
        if permanent or attempt >= p.callback_max_attempts:
            state = dataclasses.replace(cb, status=CallbackStatus.FAILED, attempts=attempt, last_error=error)
            self._record(task, state, now)
            self._telemetry.task_event("callback_failed", task, callback_attempt=attempt, error=error)
            self._telemetry.metric("CallbacksFailed", 1, task_type=task.name)
            return DeliveryOutcome(done=True, status=CallbackStatus.FAILED)
        state = dataclasses.replace(cb, status=CallbackStatus.RETRYING, attempts=attempt, last_error=error)
        self._record(task, state, now)
        delay = backoff_seconds(attempt, p.callback_base_seconds, p.callback_cap_seconds, self._rand)
        self._telemetry.task_event(
            "callback_retrying", task, callback_attempt=attempt, error=error, retry_in_seconds=delay
        )
        self._telemetry.metric("CallbackRetries", 1, task_type=task.name)
        return DeliveryOutcome(done=False, retry_after_seconds=delay, status=CallbackStatus.RETRYING)

    def _record(self, task: Task, state: CallbackState, now: str) -> None:
        try:
            self._repo.update(
                task.ref, {"callback": state, "updated_at": now}, Expect(frozenset(TERMINAL_STATUSES)), current=task
            )
        except ConditionFailedError:
            logger.warning("could not record callback state", extra={"task_id": task.task_id})


class Reconciler:
    """Finds tasks nothing is carrying (message lost, worker crashed) and sends them again."""

    def __init__(
        self,
        repository: TaskRepository,
        queue: TaskQueue,
        *,
        clock: Clock | None = None,
        policy: Policy | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._clock = clock or SystemClock()
        self._policy = policy or Policy()
        self._telemetry = telemetry or NullTelemetry()

    def run_once(self, limit: int = 100) -> list[str]:
        now = self._clock.now()
        redriven: list[str] = []
        for stuck in self._repo.due(iso(now), limit):
            if stuck.is_terminal:
                continue
            # Push due_at forward first so concurrent sweeps do not pile up messages.
            new_due = iso(after(now, self._policy.pending_grace_seconds))
            waiting = stuck.status is TaskStatus.RUNNING and stuck.handed_over_at is not None
            try:
                if waiting:
                    # between two segments, its continuation message lost: send it again (the
                    # lease moves too, so the waiting task is not taken for a crashed one)
                    task = self._repo.update(
                        stuck.ref,
                        {"due_at": new_due, "lease_expires_at": new_due},
                        Expect(
                            frozenset({TaskStatus.RUNNING}),
                            attempts=stuck.attempts,
                            segments=stuck.segments,
                            handed_over=True,
                        ),
                    )
                else:
                    task = self._repo.update(
                        stuck.ref,
                        {"due_at": new_due},
                        Expect(frozenset({stuck.status}), attempts=stuck.attempts),
                    )
            except ConditionFailedError:
                continue
            self._queue.enqueue(task, continuation=waiting)
            reason = (
                "hand-over not picked up"
                if waiting
                else "lease expired"
                if task.status is TaskStatus.RUNNING
                else "not picked up"
            )
            self._telemetry.task_event("redriven", task, reason=reason)
            self._telemetry.metric("TasksRedriven", 1, task_type=task.name)
            redriven.append(task.task_id)
        return redriven


def new_message(owner: str, content: str, task_id: str, now: datetime) -> Message:
    stamp = iso(now)
    return Message(
        message_id=f"{stamp}#{uuid.uuid4().hex[:12]}", owner=owner, content=content, task_id=task_id, created_at=stamp
    )
