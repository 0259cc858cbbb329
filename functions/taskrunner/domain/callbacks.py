"""Delivers a finished task's JSON to its callback URL and records how it went."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from collections.abc import Callable
from urllib.parse import urlsplit

from .errors import (
    ConditionFailedError,
    EgressDeniedError,
    TaskRunnerError,
)
from .models import (
    TERMINAL_STATUSES,
    CallbackState,
    CallbackStatus,
    Expect,
    Task,
    iso,
)
from .policy import Policy, SystemClock, backoff_seconds
from .ports import (
    CallbackSender,
    Clock,
    NullTelemetry,
    TaskRepository,
    Telemetry,
)
from .receivers import ReceiverHealth

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    done: bool
    retry_after_seconds: int = 0
    status: CallbackStatus | None = None


class CallbackService:
    """Delivers a finished task's JSON to its callback URL and records how it went."""

    def __init__(
        self,
        repository: TaskRepository,
        sender: CallbackSender,
        *,
        policy: Policy | None = None,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        telemetry: Telemetry | None = None,
        receivers: ReceiverHealth | None = None,
    ) -> None:
        self._repo = repository
        self._sender = sender
        self._policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._rand = rand
        self._telemetry = telemetry or NullTelemetry()
        self._receivers = receivers or ReceiverHealth(
            lambda: self._clock.now().timestamp(),
            base_seconds=self._policy.callback_base_seconds,
            cap_seconds=min(600.0, self._policy.callback_cap_seconds),
        )

    def deliver(self, task_id: str, *, may_defer: bool = True) -> DeliveryOutcome:
        """One delivery attempt; ``may_defer``: a host in its cool-down is not tried now (no
        attempt counted) and the callback comes back when the cool-down ends."""
        p = self._policy
        task = self._repo.get(task_id)
        if task is None or task.callback is None or not task.is_terminal:
            return DeliveryOutcome(done=True)
        cb = task.callback
        if cb.status in (CallbackStatus.DELIVERED, CallbackStatus.FAILED):
            return DeliveryOutcome(done=True, status=cb.status)
        parts = urlsplit(cb.url)
        host = f"{parts.scheme}://{parts.netloc}"  # the receiver: one origin
        wait = self._receivers.cooling(host) if may_defer else 0.0
        if wait > 0:
            self._telemetry.task_event("callback_deferred", task, receiver=host, retry_in_seconds=math.ceil(wait))
            return DeliveryOutcome(done=False, retry_after_seconds=math.ceil(wait), status=cb.status)
        payload = json.dumps(task.callback_payload(), separators=(",", ":"), default=str).encode()
        attempt = cb.attempts + 1
        error: str | None = None
        code: int | None = None
        refused = False
        try:
            code = self._sender.send(
                cb.url, payload, message_id=f"msg_{task.task_id}", timeout=p.callback_timeout_seconds, owner=task.owner
            )
        except EgressDeniedError as exc:
            error, refused = str(exc), True
        except TaskRunnerError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = iso(self._clock.now())
        if code is not None and 200 <= code < 300:
            state = dataclasses.replace(
                cb, status=CallbackStatus.DELIVERED, attempts=attempt, last_error=None, delivered_at=now
            )
            self._record(task, state, now)
            self._receivers.delivered(host)
            self._telemetry.task_event("callback_delivered", task, callback_attempt=attempt, receiver_status=code)
            self._telemetry.metric("CallbacksDelivered", 1, task_type=task.name)
            return DeliveryOutcome(done=True, status=CallbackStatus.DELIVERED)
        if code is not None:
            error = f"receiver answered HTTP {code}"
        permanent = code == 410 or refused
        if not refused:
            self._receivers.failed(host)  # answered badly or not at all: the host counts against it
        if permanent or attempt >= p.callback_max_attempts:
            state = dataclasses.replace(cb, status=CallbackStatus.FAILED, attempts=attempt, last_error=error)
            self._record(task, state, now)
            self._telemetry.task_event("callback_failed", task, callback_attempt=attempt, error=error)
            self._telemetry.metric("CallbacksFailed", 1, task_type=task.name)
            return DeliveryOutcome(done=True, status=CallbackStatus.FAILED)
        state = dataclasses.replace(cb, status=CallbackStatus.RETRYING, attempts=attempt, last_error=error)
        self._record(task, state, now)
        delay = backoff_seconds(attempt, p.callback_base_seconds, p.callback_cap_seconds, self._rand)
        self._telemetry.task_event(
            "callback_retrying", task, callback_attempt=attempt, error=error, retry_in_seconds=delay
        )
        self._telemetry.metric("CallbackRetries", 1, task_type=task.name)
        return DeliveryOutcome(done=False, retry_after_seconds=delay, status=CallbackStatus.RETRYING)

    def _record(self, task: Task, state: CallbackState, now: str) -> None:
        try:
            self._repo.update(
                task.ref, {"callback": state, "updated_at": now}, Expect(frozenset(TERMINAL_STATUSES)), current=task
            )
        except ConditionFailedError:
            logger.warning("could not record callback state", extra={"task_id": task.task_id})
