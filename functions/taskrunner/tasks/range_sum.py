"""``range_sum``: seed 004's heavy computation, sum(range(n)), with progress.

Computed as seed 004 computes it (adding the integers up, a million at a time), so a large
``n`` is hours of work: the partial sum is checkpointed after every slice, and the sum is
continued across worker invocations (and resumed after a crash) and exact in the end.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..domain.ports import TaskContext
from .registry import TaskRegistry

SLICE = 1_000_000  # integers added between two checks (tens of milliseconds)


class RangeSumParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")
    n: int = Field(
        default=1_000_000,
        ge=0,
        le=10**12,
        validation_alias=AliasChoices("n", "input"),
        description="Sums 0..n-1 (n up to 10^12: about 40 million integers a second).",
    )
    chunks: int = Field(default=10, ge=1, le=1000, description="Progress steps.")


def _resumed(state: object, n: int) -> tuple[int, int]:
    """(next integer to add, sum so far) from the last checkpoint, or (0, 0)."""
    if isinstance(state, dict):
        start, total = state.get("next"), state.get("total")
        if isinstance(start, int) and isinstance(total, int) and 0 <= start <= n:
            return start, total
    return 0, 0


def run(params: RangeSumParameters, ctx: TaskContext) -> dict[str, int]:
    n = params.n
    start, total = _resumed(ctx.resume_state, n)
    report_every = max(1, n // params.chunks)
    next_report = (start // report_every + 1) * report_every
    while start < n:
        stop = min(n, start + SLICE)
        total += sum(range(start, stop))
        start = stop
        ctx.checkpoint({"next": start, "total": total})
        if start >= next_report or start == n:
            ctx.progress(100 * start / n)
            next_report = (start // report_every + 1) * report_every
    return {"n": n, "result": total}


def register(registry: TaskRegistry) -> None:
    registry.register(
        "range_sum",
        run,
        RangeSumParameters,
        description="Sums the integers 0..n-1 (seed 004's computation); checkpoints its partial sum, "
        "so a large n continues across worker invocations.",
        checkpoints=True,
    )
