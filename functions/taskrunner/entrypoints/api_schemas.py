"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ..domain import jsonsafe
from ..domain.views import TaskLinks, TaskPublic


class TaskCreate(BaseModel):
    """A task submission. Field names of the other seeds are accepted as aliases."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "sleep", "parameters": {"seconds": 3}, "callback_url": "https://example.com/hook"}]
        },
    )

    name: str = Field(
        min_length=1,
        max_length=100,
        validation_alias=AliasChoices("name", "type", "task_name"),
        description="The task type (see GET /api/task-types). Aliases: `type`, `task_name`.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("parameters", "payload", "task_parameters", "data"),
        description="The task type's parameters. Aliases: `payload`, `task_parameters`, `data`.",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        validation_alias=AliasChoices("callback_url", "notify_url"),
        description="http(s) URL that receives the result as a signed POST when the task ends. Alias: `notify_url`.",
    )
    delay_seconds: int = Field(default=0, ge=0, le=900, description="Start no sooner than this many seconds from now.")
    max_attempts: int | None = Field(
        default=None, ge=1, le=10, description="Attempts before the task is FAILED (default 3)."
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=840,
        description="Per-attempt time limit; for a task that checkpoints, the longest it may run without a checkpoint.",
    )
    max_runtime_seconds: int | None = Field(
        default=None,
        ge=1,
        le=604_800,
        description="Total running time allowed, across the worker invocations a task that checkpoints is "
        "continued over and across its attempts, counted from its first start (default and limit: "
        "GET /api/task-types, 24 h unless the deployment sets otherwise).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form data echoed back in the task and callback."
    )
    priority: bool = Field(default=False, description="Use the high-priority queue.")

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("callback_url must be an http:// or https:// URL")
        return value

    @field_validator("parameters", "metadata")
    @classmethod
    def _safe_json(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Valid, bounded JSON only (checked before anything else reads the value)."""
        try:
            jsonsafe.check(value)
        except jsonsafe.UnsafeJsonError as exc:
            where = jsonsafe.describe((str(info.field_name), *exc.path))
            raise PydanticCustomError(exc.kind, "{where}: {reason}", {"where": where, "reason": exc.reason}) from None
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        import json

        if len(json.dumps(value, default=str)) > 8192:
            raise ValueError("metadata must be at most 8192 bytes as JSON")
        return value


class ErrorDetail(BaseModel):
    """Every error: ``detail`` is a message, or for 422 a list of {loc, msg, type}."""

    detail: Any


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error("Missing or invalid API key"),
    429: error("Too many requests for this API key"),
    503: error("A dependency (DynamoDB or SQS) is unavailable; retry after Retry-After seconds"),
}


class TaskAccepted(BaseModel):
    task_id: str
    status: str
    name: str
    created_at: str
    links: TaskLinks
    message: str = "Task accepted"


class CallbackSecret(BaseModel):
    owner: str
    signing_secret: str
    scheme: str


class TaskPage(BaseModel):
    tasks: list[TaskPublic]
    total: int = Field(description="Number of tasks on this page.")
    next_cursor: str | None = None


class TaskTypePublic(BaseModel):
    name: str
    description: str
    queue: str
    timeout_seconds: int
    checkpoints: bool = Field(
        description="Saves checkpoints, so runs longer than one worker invocation continue in the next."
    )
    parameters_schema: dict[str, Any]


class TaskLimits(BaseModel):
    max_timeout_seconds: int = Field(description="The most timeout_seconds may be.")
    default_max_runtime_seconds: int = Field(description="max_runtime_seconds when a submission gives none.")
    max_runtime_seconds: int = Field(description="The most max_runtime_seconds may be.")
    checkpoint_max_bytes: int = Field(description="The largest checkpoint state, as JSON.")
    result_max_bytes: int = Field(description="The largest task result, as JSON.")


class TaskTypeList(BaseModel):
    task_types: list[TaskTypePublic]
    limits: TaskLimits


class MessagePublic(BaseModel):
    id: str
    content: str
    task_id: str
    created_at: str


class MessagePage(BaseModel):
    messages: list[MessagePublic]
    total: int
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str]
