"""Per-receiver backoff: a callback host that keeps failing is left alone for a while.

Kept per execution environment (a notifier's environment serves many batches): after
``threshold`` failed deliveries in a row to one receiver (an origin: scheme, host and port),
further callbacks to it wait out a
cool-down (``base`` doubling per further failure, up to ``cap``) instead of each spending a
delivery slot on a receiver that is down. A delivered callback ends the cool-down.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable


@dataclasses.dataclass
class _Host:
    failures: int = 0
    until: float = 0.0


class ReceiverHealth:
    def __init__(
        self, clock: Callable[[], float], *, threshold: int = 3, base_seconds: float = 30.0, cap_seconds: float = 600.0
    ) -> None:
        self._clock = clock
        self._threshold = threshold
        self._base = base_seconds
        self._cap = cap_seconds
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()  # the notifier delivers a batch's records in parallel

    def cooling(self, host: str) -> float:
        """Seconds until ``host`` may be tried again (0: now)."""
        with self._lock:
            state = self._hosts.get(host)
            return max(0.0, state.until - self._clock()) if state else 0.0

    def failed(self, host: str) -> None:
        with self._lock:
            state = self._hosts.setdefault(host, _Host())
            state.failures += 1
            if state.failures >= self._threshold:
                extra = state.failures - self._threshold
                state.until = self._clock() + min(self._cap, self._base * 2 ** min(extra, 20))

    def delivered(self, host: str) -> None:
        with self._lock:
            self._hosts.pop(host, None)
