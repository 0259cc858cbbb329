"""``range_sum``: seed 004's heavy computation, sum(range(n)), with progress."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class RangeSumParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")
    n: int = Field(
        default=1_000_000, ge=0, le=10**10, validation_alias=AliasChoices("n", "input"), description="Sums 0..n-1."
    )
    chunks: int = Field(default=10, ge=1, le=1000, description="Progress steps.")


def run(params: RangeSumParameters, ctx: TaskContext) -> dict[str, int]:
    total = 0
    step = max(1, params.n // params.chunks)
    start = 0
    while start < params.n:
        stop = min(params.n, start + step)
        # sum of an arithmetic series is exact; the loop keeps the task cancellable
        total += (start + stop - 1) * (stop - start) // 2
        start = stop
        ctx.progress(100 * start / params.n)
    return {"n": params.n, "result": total}


def register(registry: TaskRegistry) -> None:
    registry.register(
        "range_sum", run, RangeSumParameters, description="Sums the integers 0..n-1 (seed 004's computation)."
    )
