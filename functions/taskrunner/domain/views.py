"""The task as clients see it: the one declaration of the public shape.

``/state``, the listings, the event stream and the OpenAPI document all serve these classes:
``public_task`` fills a ``TaskPublic`` (mypy checks every field is given, with its type), the
stream and the API turn it into JSON with ``to_json``, and the API names ``TaskPublic`` as
its response model, so pydantic derives the documented schema (with the field docstrings
below as descriptions) from the same declaration. Plain dataclasses: the domain imports no
third-party package; ``__pydantic_config__`` is a class attribute only pydantic reads.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from . import jsonsafe

if TYPE_CHECKING:
    from .attempts import Attempt
    from .models import Task

# read by pydantic when the API builds its schema: field docstrings become descriptions
_DOCUMENTED = {"use_attribute_docstrings": True}


def served(field: str, value: Any) -> Any:
    """A free-form field as it is served: the value, or a marker naming why it cannot be
    (a value stored by an older version that is not valid, bounded JSON)."""
    try:
        jsonsafe.check(value)
    except jsonsafe.UnsafeJsonError as exc:
        return jsonsafe.unreadable(field, exc)
    return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ErrorBody:
    __pydantic_config__ = _DOCUMENTED

    type: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProgressBody:
    __pydantic_config__ = _DOCUMENTED

    percent: float
    message: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackBody:
    __pydantic_config__ = _DOCUMENTED

    url: str
    status: str
    attempts: int
    last_error: str | None = None
    delivered_at: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttemptErrorBody:
    __pydantic_config__ = _DOCUMENTED

    type: str
    message: str
    traceback: list[str] = dataclasses.field(default_factory=list)
    """The last frames (at most 8), oldest first, as text; no locals, keys or secrets."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttemptBody:
    __pydantic_config__ = _DOCUMENTED

    attempt: int
    """The attempt's number, from 1."""
    outcome: str
    """COMPLETED, FAILED, RETRYING, CANCELLED, TIMED_OUT or LOST."""
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    segments: int | None = None
    """The task's segment count when the attempt ended."""
    error: AttemptErrorBody | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskLinks:
    """Where the API serves the task (the API adds them; the stream's events have none)."""

    __pydantic_config__ = _DOCUMENTED

    self: str
    state: str
    stream: str
    cancel: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskPublic:
    __pydantic_config__ = _DOCUMENTED

    task_id: str
    name: str
    status: str
    queue: str
    parameters: dict[str, Any]
    metadata: dict[str, Any]
    result: Any = None
    error: ErrorBody | None = None
    progress: ProgressBody
    attempts: int
    max_attempts: int
    timeout_seconds: int
    max_runtime_seconds: int
    segments: int
    """Worker invocations the task has run in so far (a long task: several)."""
    checkpointed_at: str | None = None
    """When the task last saved a checkpoint."""
    between_segments: bool
    """RUNNING, waiting for its next segment to start in a fresh worker invocation."""
    cancel_requested: bool
    next_attempt_at: str | None = None
    created_at: str
    started_at: str | None = None
    updated_at: str
    completed_at: str | None = None
    callback: CallbackBody | None = None
    attempt_history: list[AttemptBody] = dataclasses.field(default_factory=list)
    """The last attempts (at most 10), oldest first."""
    retry_of: str | None = None
    """The task this one re-runs (POST .../retry)."""
    version: int
    links: TaskLinks | None = None


def public_task(task: Task, links: TaskLinks | None = None) -> TaskPublic:
    """``task`` as clients see it: free-form fields served only as valid, bounded JSON; text
    printable and numbers finite (the parts' ``to_dict``, which is also how they are stored)."""
    return TaskPublic(
        task_id=task.task_id,
        name=jsonsafe.printable(task.name),
        status=task.status.value,
        queue=task.queue,
        parameters=served("parameters", task.parameters),
        metadata=served("metadata", task.metadata),
        result=served("result", task.result),
        error=ErrorBody(**task.error.to_dict()) if task.error else None,
        progress=ProgressBody(**task.progress.to_dict()),
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        timeout_seconds=task.timeout_seconds,
        max_runtime_seconds=task.max_runtime_seconds,
        segments=task.segments,
        checkpointed_at=task.checkpointed_at,
        between_segments=task.handed_over_at is not None and not task.is_terminal,
        cancel_requested=task.cancel_requested,
        next_attempt_at=task.next_attempt_at,
        created_at=task.created_at,
        started_at=task.started_at,
        updated_at=task.updated_at,
        completed_at=task.completed_at,
        callback=CallbackBody(**task.callback.to_dict()) if task.callback else None,
        attempt_history=[attempt_body(entry) for entry in task.attempt_history],
        retry_of=task.retry_of,
        version=task.version,
        links=links,
    )


def attempt_body(entry: Attempt) -> AttemptBody:
    fields = entry.to_dict()
    error = fields.pop("error")
    return AttemptBody(**fields, error=AttemptErrorBody(**error) if error else None)


def to_json(view: Any) -> Any:
    """A view as JSON-ready values, in declaration order; ``links`` left out while unset (the
    stream's events and callbacks' sources carry none). The free-form fields' values are served
    as they are (a list is copied, its items are not)."""
    if dataclasses.is_dataclass(view) and not isinstance(view, type):
        out = {}
        for field in dataclasses.fields(view):
            value = getattr(view, field.name)
            if field.name == "links" and value is None:
                continue
            out[field.name] = to_json(value) if dataclasses.is_dataclass(value) or isinstance(value, list) else value
        return out
    if isinstance(view, list):
        return [to_json(item) for item in view]
    return view
