"""The worker's use case: claim a task, run one segment of it, record the outcome.

The claim (first, retried or continued), the run, and every way an attempt or a segment ends
(completed, failed, retrying, cancelled, timed out, handed over) are the states of one
conditional-write protocol, kept together; the thread a segment runs in is the run context's,
the events of a start and an end reporting's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from collections.abc import Callable
from typing import Any

from . import jsonsafe
from .attempts import AttemptOutcome, attempt_entry, attempt_history, outcome_for
from .dead_letters import fail_from_dead_letter
from .errors import (
    PERMANENT_ERRORS,
    ConditionFailedError,
    DependencyUnavailableError,
    InvalidParametersError,
    InvalidResultError,
    MaxRuntimeExceededError,
    ResultTooLargeError,
    SegmentEndedError,
    TaskCancelledError,
    TaskNotFoundError,
    TaskRunnerError,
    TaskTimeoutError,
)
from .models import (
    Expect,
    Progress,
    Task,
    TaskError,
    TaskRef,
    TaskStatus,
    after,
    iso,
    parse_iso,
    terminal_changes,
)
from .policy import Policy, SystemClock, backoff_seconds
from .ports import (
    Clock,
    HttpClient,
    MessageStore,
    NullTelemetry,
    TaskCatalog,
    TaskQueue,
    TaskRepository,
    Telemetry,
)
from .reporting import ensure_callback, report_end, report_segment_start, report_start
from .run_context import RunContext, segment_running

logger = logging.getLogger(__name__)


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
        # what every claim writes: the lease, and the task no longer waiting between segments.
        # A first claim leaves due_at where the submit put it (created + delay + pending grace):
        # no index write; the reconciler, finding the task due with its lease still running,
        # moves due_at to the lease then (a short task has ended long before). A continuation's
        # claim moves it, as the hand-over did.
        held: dict[str, Any] = {"updated_at": iso(now), "lease_expires_at": lease, "handed_over_at": None}
        try:
            # The claim: one conditional write that also returns the task (no read first).
            if continuation is None:
                task = self._repo.update(
                    ref,
                    {
                        "status": TaskStatus.RUNNING,
                        "started_at": iso(now),
                        "next_attempt_at": None,
                        "attempt_started_at": iso(now),
                        **held,
                    },
                    Expect.into(
                        TaskStatus.RUNNING,
                        only=frozenset({TaskStatus.PENDING, TaskStatus.RETRYING}),
                        lease_expired_before=iso(now),
                    ),
                    increment_attempts=True,
                    increment_segments=True,
                )
            else:
                task = self._repo.update(
                    ref,
                    {**held, "due_at": lease},
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
                ensure_callback(self._queue, current)
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
        if continuation is None:
            report_start(self._telemetry, task, now)
        else:
            report_segment_start(self._telemetry, task, now, continuation.handed_over_at)
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
        ctx = RunContext(
            task,
            self._repo,
            self._clock,
            segment_seconds=min(budget, runtime_left),
            runtime_limited=runtime_left <= budget,
            policy=p,
            messages=self._messages,
            http=self._http,
        )
        box = ctx.run_in_thread(lambda: task_type.run(parameters, ctx), name=f"task-{task.task_id}")
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
            # decided by type: the domain's permanent errors and those the task type declares
            permanent = (*PERMANENT_ERRORS, *task_type.permanent_errors)
            retryable = isinstance(failure, DependencyUnavailableError) or not isinstance(failure, permanent)
            return self._failure(task, failure, retryable=retryable)
        try:
            result = jsonsafe.normalise(box.get("result"))
        except jsonsafe.UnsafeJsonError as exc:
            # never stored poisoned: the task fails, and saying why is the result
            return self._finish_error(task, InvalidResultError(f"task result is not valid, bounded JSON: {exc}"))
        size = len(json.dumps(result, separators=(",", ":")).encode())
        if size > p.result_max_bytes:
            return self._finish_error(task, ResultTooLargeError(size, p.result_max_bytes))
        return self._finish(task, TaskStatus.COMPLETED, error=None, result=result)

    def _finish_error(self, task: Task, error: TaskRunnerError) -> RunOutcome:
        return self._finish_failed(task, TaskError(type(error).__name__, str(error)))

    def _hand_over(self, task: Task, ctx: RunContext) -> RunOutcome:
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
        outcome = outcome_for(exc, AttemptOutcome.RETRYING)
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
                Expect.into(TaskStatus.RETRYING, attempts=task.attempts, segments=task.segments),
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
        changes = terminal_changes(status, now, error=error, result=result)
        if status is TaskStatus.COMPLETED:
            changes["progress"] = Progress(100.0, "completed")
        outcome = outcome_for(exc, AttemptOutcome(status.value))
        entry = attempt_entry(task, outcome, now, error=error, exc=exc)
        changes["attempt_history"] = attempt_history(task, self._policy.max_attempts_limit, entry)
        try:
            final = self._repo.update(
                task.ref,
                changes,
                Expect.into(
                    status, only=frozenset({TaskStatus.RUNNING}), attempts=task.attempts, segments=task.segments
                ),
                current=task,
            )
        except ConditionFailedError:
            # The claim was lost (lease expired and another delivery took over): its outcome wins.
            self._telemetry.task_event("claim_lost", task)
            return RunOutcome.finished()
        report_end(self._telemetry, final)
        ensure_callback(self._queue, final)
        return RunOutcome.finished(final)

    def fail_from_dead_letter(self, task_id: str, reason: str) -> Task | None:
        """A message reached the DLQ: the task ends FAILED with the reason (unless already terminal)."""
        return fail_from_dead_letter(
            self._repo, self._queue, self._telemetry, self._clock, self._policy, task_id, reason
        )
