"""``fibonacci``: F(n); returned as a decimal string since it outgrows JSON numbers."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class FibonacciParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=0, le=100_000, validation_alias=AliasChoices("n", "input"), description="Index: F(0)=0, F(1)=1.")


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def run(params: FibonacciParameters, ctx: TaskContext) -> dict[str, object]:
    ctx.check()
    value = fib(params.n)
    return {"n": params.n, "fibonacci": str(value), "digits": len(str(value))}


def register(registry: TaskRegistry) -> None:
    registry.register(
        "fibonacci", run, FibonacciParameters, description="Computes the n-th Fibonacci number (as a decimal string)."
    )
