"""``sleep``: wait N seconds, reporting progress every second (seed 002's slow task)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class SleepParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    seconds: float = Field(default=5, ge=0, le=840, description="How long to run, in seconds.")


def run(params: SleepParameters, ctx: TaskContext) -> dict[str, object]:
    steps = max(1, math.ceil(params.seconds))
    for step in range(steps):
        ctx.sleep(params.seconds / steps)
        ctx.progress(
            100 * (step + 1) / steps,
            f"slept {min(params.seconds, (step + 1) * params.seconds / steps):g} of {params.seconds:g} s",
        )
    return {"slept_seconds": params.seconds, "message": f"Task completed after {params.seconds:g} seconds"}


def register(registry: TaskRegistry) -> None:
    registry.register(
        "sleep",
        run,
        SleepParameters,
        description="Sleeps for `seconds`, reporting progress every second.",
        timeout_seconds=840,
    )
