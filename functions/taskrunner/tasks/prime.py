"""``prime``: the n-th prime number (seed 001)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..domain.ports import TaskContext
from .registry import TaskRegistry


class PrimeParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=1, le=2_000_000, validation_alias=AliasChoices("n", "input"), description="Which prime (1 -> 2).")


def nth_prime(n: int, ctx: TaskContext | None = None) -> int:
    # Sieve up to an upper bound of the n-th prime (Rosser's theorem for n >= 6).
    import math

    limit = 15 if n < 6 else int(n * (math.log(n) + math.log(math.log(n)))) + 1
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(range(i * i, limit + 1, i)))
            if ctx is not None and i % 64 == 0:
                ctx.check()
    count = 0
    for i, flag in enumerate(sieve):
        if flag:
            count += 1
            if count == n:
                return i
    raise AssertionError("sieve bound too small")  # pragma: no cover - the bound is proven


def run(params: PrimeParameters, ctx: TaskContext) -> dict[str, int]:
    return {"n": params.n, "prime": nth_prime(params.n, ctx)}


def register(registry: TaskRegistry) -> None:
    registry.register("prime", run, PrimeParameters, description="Computes the n-th prime number (`n` or `input`).")
