"""``sum``: adds numbers: ``{"numbers": [...]}`` or seed 003's ``{"a": .., "b": ..}``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class SumParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
    out: dict[str, object] = {"operation": "sum", "result": _tidy(float(sum(numbers)))}
    if params.numbers is None:
        out["a"], out["b"] = _tidy(params.a or 0.0), _tidy(params.b or 0.0)
    else:
        out["count"] = len(numbers)
    return out


def register(registry: TaskRegistry) -> None:
    registry.register("sum", run, SumParameters, description="Adds `numbers`, or `a` and `b`.")
