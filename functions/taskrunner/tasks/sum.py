"""``sum``: adds numbers: ``{"numbers": [...]}`` or seed 003's ``{"a": .., "b": ..}``.

Numbers are 64-bit floats; a sum beyond their range (about ±1.8e308) fails the task with
``SumOverflowError`` rather than returning Infinity, which is not JSON."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class SumOverflowError(ValueError):
    """The sum does not fit a 64-bit float."""


class SumParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    numbers: list[float] | None = Field(default=None, max_length=10_000, description="Numbers to add.")
    a: float | None = None
    b: float | None = None

    @model_validator(mode="after")
    def _one_form(self) -> SumParameters:
        if self.numbers is None and (self.a is None or self.b is None):
            raise ValueError("give `numbers` (a list) or both `a` and `b`")
        return self


def _tidy(x: float) -> float | int:
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def run(params: SumParameters, ctx: TaskContext) -> dict[str, object]:
    numbers = params.numbers if params.numbers is not None else [params.a or 0.0, params.b or 0.0]
    total = float(sum(numbers))
    if not math.isfinite(total):
        raise SumOverflowError("the sum is beyond the range of a 64-bit float (about ±1.8e308)")
    out: dict[str, object] = {"operation": "sum", "result": _tidy(total)}
    if params.numbers is None:
        out["a"], out["b"] = _tidy(params.a or 0.0), _tidy(params.b or 0.0)
    else:
        out["count"] = len(numbers)
    return out


def register(registry: TaskRegistry) -> None:
    registry.register("sum", run, SumParameters, description="Adds `numbers`, or `a` and `b`.")
