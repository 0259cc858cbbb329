"""Services wired with in-memory fakes, for unit tests."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta

from taskrunner.adapters.memory import (
    InMemoryMessageStore,
    InMemoryTaskQueue,
    InMemoryTaskRepository,
    RecordingHttpClient,
)
from taskrunner.bootstrap import Services
from taskrunner.config import Settings
from taskrunner.domain.service import CallbackService, Policy, Reconciler, TaskService, WorkerService
from taskrunner.tasks.registry import TaskRegistry, build_registry


class FakeClock:
    """The domain's clock in unit tests, on virtual time: the wall clock stands still until
    ``advance`` moves it, and a pause (``wait``, e.g. a task's ``ctx.sleep``) takes no real
    time: the clock jumps over it at once. The monotonic reading is the real one plus every
    jump, so a task that blocks for real (ignoring its context) still reaches its deadline,
    in real seconds. With ``virtual=False`` pauses take real time (a test that acts while a
    task sleeps)."""

    def __init__(self, start: datetime | None = None, *, virtual: bool = True) -> None:
        self.current = start or datetime(2026, 11, 19, 9, 0, 0, tzinfo=UTC)
        self.virtual = virtual
        self._jumped = 0.0
        self._lock = threading.Lock()  # a task's thread pauses while the test reads or advances

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic() + self._jumped

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if not self.virtual:
            return event.wait(max(0.0, seconds))
        if not event.is_set():
            self.advance(max(0.0, seconds))
        return event.is_set()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.current += timedelta(seconds=seconds)
            self._jumped += seconds


@dataclasses.dataclass
class Fakes:
    repo: InMemoryTaskRepository
    queue: InMemoryTaskQueue
    messages: InMemoryMessageStore
    http: RecordingHttpClient
    clock: FakeClock
    services: Services


def make_fakes(
    policy: Policy | None = None,
    registry: TaskRegistry | None = None,
    callback_statuses: list[int] | None = None,
    *,
    virtual_time: bool = True,
) -> Fakes:
    repo = InMemoryTaskRepository()
    queue = InMemoryTaskQueue()
    messages = InMemoryMessageStore()
    http = RecordingHttpClient(callback_statuses)
    clock = FakeClock(virtual=virtual_time)
    policy = policy or Policy(progress_min_interval_seconds=0.0)
    catalog = registry or build_registry()
    settings = Settings(policy=policy)
    services = Services(
        settings=settings,
        tasks=TaskService(repo, queue, catalog, policy=policy, clock=clock),
        worker=WorkerService(repo, queue, catalog, messages, http, policy=policy, clock=clock, rand=lambda: 0.5),
        callbacks=CallbackService(repo, http, policy=policy, clock=clock, rand=lambda: 0.5),
        reconciler=Reconciler(repo, queue, clock=clock, policy=policy),
        repository=repo,
        queue=queue,
        messages=messages,
        clock=clock,
    )
    return Fakes(repo, queue, messages, http, clock, services)
