"""``fail``: fails on purpose, for demos and tests of retries and failure callbacks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..domain.errors import NonRetryableError
from ..domain.ports import TaskContext
from .registry import TaskRegistry


class FailParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(default="failed on purpose", max_length=1000)
    retryable: bool = Field(default=True, description="Whether another attempt may be made.")
    succeed_on_attempt: int | None = Field(default=None, ge=1, le=10, description="Succeed from this attempt on.")


class IntentionalFailure(RuntimeError):
    pass


def run(params: FailParameters, ctx: TaskContext) -> dict[str, object]:
    ctx.check()
    if params.succeed_on_attempt is not None and ctx.attempt >= params.succeed_on_attempt:
        return {"succeeded_on_attempt": ctx.attempt}
    if not params.retryable:
        raise NonRetryableError(params.message)
    raise IntentionalFailure(params.message)


def register(registry: TaskRegistry) -> None:
    registry.register(
        "fail", run, FailParameters, description="Fails with `message` (optionally succeeding from attempt N)."
    )
