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


# Python refuses str() of ints over 4300 digits (a process-wide guard against slow
# conversions); F(100000) has 20899, so it is written out in chunks below that limit.
_CHUNK_DIGITS = 4000
_CHUNK = 10**_CHUNK_DIGITS


def decimal(value: int) -> str:
    """``str(value)`` for an int of any length, leaving the interpreter's limit untouched."""
    if value < 0:
        return "-" + decimal(-value)
    parts: list[int] = []
    while value >= _CHUNK:
        value, low = divmod(value, _CHUNK)
        parts.append(low)
    return str(value) + "".join(str(part).zfill(_CHUNK_DIGITS) for part in reversed(parts))


def run(params: FibonacciParameters, ctx: TaskContext) -> dict[str, object]:
    ctx.check()
    text = decimal(fib(params.n))
    return {"n": params.n, "fibonacci": text, "digits": len(text)}


def register(registry: TaskRegistry) -> None:
    registry.register(
        "fibonacci", run, FibonacciParameters, description="Computes the n-th Fibonacci number (as a decimal string)."
    )
