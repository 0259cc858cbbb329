"""Finds tasks nothing is carrying (message lost, worker crashed, hand-over not picked up) and sends them again."""

from __future__ import annotations

import logging

from .errors import (
    ConditionFailedError,
)
from .models import (
    Expect,
    Task,
    TaskStatus,
    after,
    iso,
)
from .policy import Policy, SystemClock
from .ports import (
    Clock,
    NullTelemetry,
    TaskQueue,
    TaskRepository,
    Telemetry,
)

logger = logging.getLogger(__name__)


class Reconciler:
    """Finds tasks nothing is carrying (message lost, worker crashed) and sends them again."""

    def __init__(
        self,
        repository: TaskRepository,
        queue: TaskQueue,
        *,
        clock: Clock | None = None,
        policy: Policy | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._clock = clock or SystemClock()
        self._policy = policy or Policy()
        self._telemetry = telemetry or NullTelemetry()

    def run_once(self, limit: int = 100) -> list[str]:
        now = self._clock.now()
        redriven: list[str] = []
        for stuck in self._repo.due(iso(now), limit):
            if stuck.is_terminal:
                continue
            # Push due_at forward first so concurrent sweeps do not pile up messages.
            new_due = iso(after(now, self._policy.pending_grace_seconds))
            waiting = stuck.status is TaskStatus.RUNNING and stuck.handed_over_at is not None
            lease = stuck.lease_expires_at
            if stuck.status is TaskStatus.RUNNING and not waiting and lease is not None and lease > iso(now):
                # claimed, its lease still running (a claim does not move due_at): look again
                # when the lease ends; nothing to send
                self._follow_lease(stuck, lease)
                continue
            try:
                if waiting:
                    # between two segments, its continuation message lost: send it again (the
                    # lease moves too, so the waiting task is not taken for a crashed one)
                    task = self._repo.update(
                        stuck.ref,
                        {"due_at": new_due, "lease_expires_at": new_due},
                        Expect(
                            frozenset({TaskStatus.RUNNING}),
                            attempts=stuck.attempts,
                            segments=stuck.segments,
                            handed_over=True,
                        ),
                    )
                else:
                    task = self._repo.update(
                        stuck.ref,
                        {"due_at": new_due},
                        Expect(frozenset({stuck.status}), attempts=stuck.attempts),
                    )
            except ConditionFailedError:
                continue
            self._queue.enqueue(task, continuation=waiting)
            reason = (
                "hand-over not picked up"
                if waiting
                else "lease expired"
                if task.status is TaskStatus.RUNNING
                else "not picked up"
            )
            self._telemetry.task_event("redriven", task, reason=reason)
            self._telemetry.metric("TasksRedriven", 1, task_type=task.name)
            redriven.append(task.task_id)
        return redriven

    def _follow_lease(self, task: Task, lease: str) -> None:
        try:
            self._repo.update(
                task.ref,
                {"due_at": lease},
                Expect(frozenset({TaskStatus.RUNNING}), attempts=task.attempts, handed_over=False),
            )
        except ConditionFailedError:
            pass  # it moved on meanwhile (ended, reclaimed, handed over): the next sweep sees it
