"""``sleep``: wait N seconds, reporting progress every second (seed 002's slow task).

Up to 24 hours: it checkpoints the steps it has slept, so a sleep longer than one worker
invocation is continued in the next one (and resumed there after a crash) and still sleeps
exactly ``seconds`` in all.
"""

from __future__ import annotations

import math

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class SleepParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    seconds: float = Field(
        default=5,
        ge=0,
        le=86_400,
        validation_alias=AliasChoices("seconds", "input"),
        description="How long to run, in seconds (up to 24 h). Alias: `input` (seed 001).",
    )


def _steps(params: SleepParameters) -> int:
    return max(1, math.ceil(params.seconds))


def _resumed_step(state: object, steps: int) -> int:
    """The step to go on from: what the last checkpoint recorded (0 without one)."""
    step = state.get("step") if isinstance(state, dict) else None
    return max(0, min(steps, step)) if isinstance(step, int) else 0


def run(params: SleepParameters, ctx: TaskContext) -> dict[str, object]:
    steps = _steps(params)
    each = params.seconds / steps
    for step in range(_resumed_step(ctx.resume_state, steps), steps):
        ctx.sleep(each)
        ctx.progress(
            100 * (step + 1) / steps,
            f"slept {min(params.seconds, (step + 1) * each):g} of {params.seconds:g} s",
        )
        # written with the next progress (or at the hand-over): the stored progress is at most
        # one step ahead of the stored checkpoint, and a run resumed from it reports that very
        # step next, so progress never goes back, across segments or after a crash
        ctx.checkpoint({"step": step + 1})
    return {"slept_seconds": params.seconds, "message": f"Task completed after {params.seconds:g} seconds"}


def register(registry: TaskRegistry) -> None:
    registry.register(
        "sleep",
        run,
        SleepParameters,
        description="Sleeps for `seconds` (up to 24 h), reporting progress every second; "
        "checkpoints, so runs longer than one worker invocation continue in the next.",
        timeout_seconds=840,
        checkpoints=True,
        runtime=lambda params: params.seconds,
    )
