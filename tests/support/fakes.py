"""Services wired with in-memory fakes, for unit tests."""

from __future__ import annotations

import dataclasses
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
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 19, 9, 0, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclasses.dataclass
class Fakes:
    repo: InMemoryTaskRepository
    queue: InMemoryTaskQueue
    messages: InMemoryMessageStore
    http: RecordingHttpClient
    clock: FakeClock
    services: Services


def make_fakes(
    policy: Policy | None = None, registry: TaskRegistry | None = None, callback_statuses: list[int] | None = None
) -> Fakes:
    repo = InMemoryTaskRepository()
    queue = InMemoryTaskQueue()
    messages = InMemoryMessageStore()
    http = RecordingHttpClient(callback_statuses)
    clock = FakeClock()
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
    )
    return Fakes(repo, queue, messages, http, clock, services)
