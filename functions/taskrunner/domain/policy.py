"""Operational limits and timings (built from Settings by the composition root), the clock and the backoff rule."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """Operational limits and timings; built from Settings by the composition root."""

    default_max_attempts: int = 3
    max_attempts_limit: int = 10
    max_timeout_seconds: int = 840
    pending_grace_seconds: int = 120
    lease_grace_seconds: int = 30
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 300.0
    result_max_bytes: int = 256 * 1024
    progress_min_interval_seconds: float = 1.0
    callback_max_attempts: int = 8
    callback_base_seconds: float = 30.0
    callback_cap_seconds: float = 3600.0
    callback_timeout_seconds: float = 10.0
    stop_margin_seconds: float = 5.0
    default_max_runtime_seconds: int = 86_400
    max_runtime_limit_seconds: int = 86_400
    checkpoint_max_bytes: int = 32 * 1024


class SystemClock:
    """The real clocks: the one place the domain reads the time of the machine it runs on."""

    def now(self) -> datetime:
        from .models import utcnow

        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


def backoff_seconds(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> int:
    """Exponential backoff with 'equal jitter': between half and all of min(cap, base*2^(n-1))."""
    ceiling: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return max(1, round(ceiling / 2 + rand() * ceiling / 2))
