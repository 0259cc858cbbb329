"""The TaskContext handed to a running task: one segment of one attempt (see execution.py)."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from . import jsonsafe
from .errors import (
    CheckpointError,
    ConditionFailedError,
    MaxRuntimeExceededError,
    SegmentEndedError,
    TaskCancelledError,
    TaskRunnerError,
    TaskTimeoutError,
    invocation_ended,
)
from .models import (
    Expect,
    Progress,
    Task,
    TaskStatus,
    after,
    iso,
)
from .policy import Policy
from .ports import (
    Clock,
    HttpClient,
    MessageStore,
    TaskRepository,
)

logger = logging.getLogger(__name__)


class RunContext:
    """The TaskContext handed to a running task: one segment of one attempt.

    Two deadlines bound it: the segment's end (what is left of the worker invocation, or of
    the task's ``max_runtime_seconds`` if that comes first); the task's ``timeout_seconds``,
    counted from the segment's start and again from each checkpoint. Both are
    read on the injected clock's monotonic reading, and every pause is the clock's (so a fake
    clock runs a task's sleeps in no real time). At the segment's end a task that has
    checkpointed gets SegmentEndedError (the worker hands it on), one that has not gets
    InvocationEndedError.
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
        self._started = clock.monotonic()
        self._segment_end = self._started + segment_seconds
        self._runtime_limited = runtime_limited
        self._timeout = float(task.timeout_seconds)
        self._timeout_end = self._started + self._timeout
        self._lease_until = self.hard_deadline()  # what the claim's lease (less its grace) covers
        self._policy = policy
        self._min_interval = policy.progress_min_interval_seconds
        self._last_write = -math.inf  # never: the first progress is written at once
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
        return self._clock.monotonic() - self._started

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
        if self._clock.monotonic() - self._last_write >= self._min_interval:
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
            self._timeout_end = self._clock.monotonic() + self._timeout
        if self._clock.monotonic() - self._last_write >= self._min_interval:
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
        self._last_write = self._clock.monotonic()
        # A task that checkpoints may run past the lease its claim wrote (its timeout restarts
        # at each checkpoint): the lease keeps ahead of when the worker would stop waiting,
        # moved a timeout further each time (about one lease write per timeout, not per write),
        # so a live segment is never taken for a crashed one and a crash is still seen soon.
        deadline = self.hard_deadline()
        if deadline > self._lease_until:
            target = min(self._segment_end, deadline + self._timeout)
            lease = iso(after(now, target - self._clock.monotonic() + self._policy.lease_grace_seconds))
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
        now = self._clock.monotonic()
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

    def run_in_thread(self, run: Callable[[], Any], *, name: str) -> dict[str, Any]:
        """``run()`` (the task type's function, given this context) in a thread of its own,
        waited for until the deadline, which moves with each checkpoint; what it returned
        (``result``) or raised (``error``). A task still running at the deadline is abandoned
        (it can write nothing more) and its error is the deadline's."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = run()
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        # wait in slices, reading the deadline on the clock. The join is a real, bounded wait for
        # the thread, not a pause of the clock's: under a fake clock a task's own sleeps take no
        # real time, and one that blocks for real is still cut off.
        clock = self._clock
        while thread.is_alive() and clock.monotonic() < self.hard_deadline() + 0.5:
            thread.join(min(0.25, max(0.01, self.hard_deadline() + 0.5 - clock.monotonic())))
        if thread.is_alive():
            self.abandon()
            box["error"] = self.expired() or TaskTimeoutError(self._task.timeout_seconds)
        return box

    def sleep(self, seconds: float) -> None:
        end = self._clock.monotonic() + seconds
        while True:
            self.check()
            left = end - self._clock.monotonic()
            if left <= 0:
                return
            if (
                self._pending is not None or self._pending_checkpoint is not None
            ) and self._clock.monotonic() - self._last_write >= self._min_interval:
                self._flush()
            # a short pause, so the deadlines are seen in time; the worker giving up ends it at once
            self._clock.wait(self._abandoned, min(left, 0.1))


def segment_running(attempt: int, segment: int) -> Expect:
    """The condition of every write a running segment makes: its claim still holds (same
    attempt and segment) and it has not handed the task on."""
    return Expect(frozenset({TaskStatus.RUNNING}), attempts=attempt, segments=segment, handed_over=False)
