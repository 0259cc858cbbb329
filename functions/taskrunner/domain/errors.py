"""Domain errors. Entry points map them to HTTP codes in one place."""

from __future__ import annotations

from typing import Any


class TaskRunnerError(Exception):
    """Base of every error this package raises on purpose."""


class TaskNotFoundError(TaskRunnerError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class UnknownTaskTypeError(TaskRunnerError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown task type {name!r}; known types: {', '.join(known)}")
        self.name = name
        self.known = known


class InvalidParametersError(TaskRunnerError):
    """Parameters that do not fit the task type's model. ``errors`` are pydantic-shaped."""

    def __init__(self, name: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"invalid parameters for task type {name!r}")
        self.name = name
        self.errors = errors


class InvalidTransitionError(TaskRunnerError):
    """The task is not in a status that allows the change (e.g. cancelling a finished task)."""

    def __init__(self, task_id: str, status: str, action: str) -> None:
        super().__init__(f"task {task_id!r} is {status}; cannot {action}")
        self.task_id = task_id
        self.status = status
        self.action = action


class ConditionFailedError(TaskRunnerError):
    """A conditional write lost: the stored task no longer matches what was expected.

    ``current`` is the stored task when the store could tell, else None.
    """

    def __init__(self, task_id: str, current: Any = None) -> None:
        super().__init__(f"task {task_id!r} changed concurrently")
        self.task_id = task_id
        self.current = current


class TaskAlreadyExistsError(TaskRunnerError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} already exists")
        self.task_id = task_id


class IdempotencyConflictError(TaskRunnerError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used with a different request body")
        self.key = key


class DependencyUnavailableError(TaskRunnerError):
    """DynamoDB or SQS did not answer; the caller may retry later."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail


class ResultTooLargeError(TaskRunnerError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"task result is {size} bytes as JSON; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class EgressDeniedError(TaskRunnerError):
    """A URL points somewhere this service may not send requests to."""


class CallbackRedirectError(TaskRunnerError):
    """A callback receiver answered with a redirect: callbacks never follow one (the signed
    body and its headers go to the registered URL only), so the attempt failed."""


class NameResolutionError(TaskRunnerError):
    """A URL's host name could not be resolved now: DNS fails transiently too, so it is
    retried like any unreachable receiver, never taken as a refusal."""


class TaskTimeoutError(TaskRunnerError):
    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"task exceeded its timeout of {seconds:g} s")
        self.seconds = seconds


def invocation_ended(seconds: float, timeout_seconds: float) -> TaskTimeoutError:
    """A task that never checkpointed reached the end of its worker invocation."""
    return TaskTimeoutError(
        seconds,
        f"task ran {seconds:.0f} s, to the end of its worker invocation, with no checkpoint to continue from "
        f"(timeout_seconds {timeout_seconds:g}; a task runs longer than one invocation only if it calls "
        "ctx.checkpoint)",
    )


class SegmentEndedError(TaskRunnerError):
    """Raised inside a running task that has checkpointed when its worker invocation is about
    to end: the worker records the checkpoint and a fresh invocation resumes from it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"segment ended after {seconds:.1f} s; the task continues from its checkpoint")
        self.seconds = seconds


class MaxRuntimeExceededError(TaskRunnerError):
    """The task's total running time across segments and attempts reached max_runtime_seconds."""

    def __init__(self, seconds: float, segments: int) -> None:
        super().__init__(f"task reached its max_runtime_seconds of {seconds:g} s (after {segments} segment(s))")
        self.seconds = seconds
        self.segments = segments


class CheckpointError(TaskRunnerError):
    """A checkpoint state that cannot be stored (not valid, bounded JSON, or over the size limit)."""


class TaskCancelledError(TaskRunnerError):
    """Raised inside a running task when cancellation was requested."""


class InvalidCursorError(TaskRunnerError):
    pass


class ThrottledError(TaskRunnerError):
    """Too many requests for this owner (HTTP 429)."""


class PayloadTooLargeError(TaskRunnerError):
    """A part of the request is over its size limit (HTTP 413)."""


class NonRetryableError(TaskRunnerError):
    """A task failure that another attempt cannot fix (bad input, result too large...)."""


class InvalidResultError(TaskRunnerError):
    """A task returned a value that is not valid, bounded JSON: never stored."""


# What another attempt cannot fix, whatever the task type; a type adds its own
# (``permanent_errors`` at registration).
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    NonRetryableError,
    InvalidParametersError,
    EgressDeniedError,
    MaxRuntimeExceededError,
    CheckpointError,
    InvalidResultError,
    ResultTooLargeError,
)
