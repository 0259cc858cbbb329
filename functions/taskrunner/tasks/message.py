"""``message``: stores a message record; ``GET /api/messages`` lists them (seed 002)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..domain.models import new_message, utcnow
from ..domain.ports import TaskContext
from .registry import TaskRegistry


class MessageParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=4000, validation_alias=AliasChoices("content", "message", "text"))


def run(params: MessageParameters, ctx: TaskContext) -> dict[str, object]:
    record = new_message(ctx.owner, params.content, ctx.task_id, utcnow())
    ctx.messages.add(record)
    return record.to_public()


def register(registry: TaskRegistry) -> None:
    registry.register(
        "message", run, MessageParameters, description="Stores `content` as a message (see GET /api/messages)."
    )
