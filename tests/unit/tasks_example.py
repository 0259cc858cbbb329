"""The README's example of adding a task type, kept runnable by the tests."""

from pydantic import BaseModel
from taskrunner.domain.ports import TaskContext
from taskrunner.tasks.registry import TaskRegistry


class EchoParameters(BaseModel):
    text: str


def echo(params: EchoParameters, ctx: TaskContext) -> dict[str, str]:
    ctx.progress(50, "echoing")
    return {"echo": params.text}


def register_echo(registry: TaskRegistry) -> None:
    registry.register("echo", echo, EchoParameters, description="Returns `text`.")
