"""Composition root: settings -> clients -> adapters -> services. Built once per process."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from .config import Settings, get_settings
from .domain.auth import ApiKeyStore, Authenticator, RateLimiter, RevocationCheck, StreamTokens, owner_signing_secret
from .domain.callbacks import CallbackService
from .domain.execution import WorkerService
from .domain.monitor import MonitorService, QueueStats, TaskStats
from .domain.policy import SystemClock
from .domain.ports import Clock, MessageStore, TaskCatalog, TaskQueue, TaskRepository, TaskType
from .domain.reconciler import Reconciler
from .domain.submission import TaskService

if TYPE_CHECKING:
    from .tasks.registry import TaskRegistry


@dataclasses.dataclass
class Services:
    settings: Settings
    tasks: TaskService
    worker: WorkerService
    callbacks: CallbackService
    reconciler: Reconciler
    repository: TaskRepository
    queue: TaskQueue
    messages: MessageStore
    # the one clock every service above was built with (the monitor's reads are timed on it too)
    clock: Clock
    authenticator: Authenticator | None = None
    master_secret: Callable[[], bytes] = lambda: b"unset"
    rate_limiter: RateLimiter | None = None
    keys: ApiKeyStore | None = None
    # revoked key ids, for the stream function (None: stream tokens are not checked for revocation)
    revocation_check: RevocationCheck | None = None
    # the queues' depths, for the monitor (None: no queues reported)
    queue_stats: QueueStats | None = None

    @functools.cached_property
    def monitor(self) -> MonitorService:
        """The operations monitor's reads (counts, queues, charts, short-id search)."""
        return MonitorService(
            cast(TaskStats, self.repository),  # the task stores implement the monitor's reads too
            self.queue_stats,
            clock=self.clock,
        )

    @functools.cached_property
    def stream_tokens(self) -> StreamTokens:
        return StreamTokens(self.master_secret(), ttl_seconds=self.settings.stream_token_ttl_seconds)

    def signing_secret_for(self, owner: str) -> str:
        return owner_signing_secret(self.master_secret(), owner)


class BuiltinCatalog:
    """The built-in task types, registered when a type is first looked up: the notifier, the
    dead-letter consumer and the reconciler never look one up, so they never import pydantic or
    the task modules, and an API request that names no type does not build their models."""

    @functools.cached_property
    def _registry(self) -> TaskRegistry:
        from .tasks.registry import build_registry

        return build_registry()

    def get(self, name: str) -> TaskType:
        return self._registry.get(name)

    def names(self) -> list[str]:
        return self._registry.names()

    def all(self) -> Sequence[TaskType]:
        return self._registry.all()


def build_services(settings: Settings, *, registry: TaskRegistry | None = None, clients: Any = None) -> Services:
    from .adapters.aws import AwsClients
    from .adapters.dynamodb_keys import DynamoDbApiKeyStore, DynamoDbKeyRevocations
    from .adapters.dynamodb_messages import DynamoDbMessageStore
    from .adapters.dynamodb_tasks import DynamoDbTaskRepository
    from .adapters.egress import EgressPolicy, GuardedHttpClient
    from .adapters.sqs_queue import SqsTaskQueue
    from .adapters.sqs_stats import SqsQueueStats
    from .adapters.webhook_sender import WebhookSender

    aws = clients or AwsClients(settings)
    repository = DynamoDbTaskRepository(aws.dynamodb, settings.tasks_table_name)
    queue = SqsTaskQueue(
        aws.sqs,
        {"default": settings.tasks_queue_url, "io": settings.io_tasks_queue_url or settings.tasks_queue_url},
        settings.callbacks_queue_url,
        priority_queue_url=settings.priority_tasks_queue_url,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )
    messages = DynamoDbMessageStore(aws.dynamodb, settings.messages_table_name)
    egress = EgressPolicy(allow_loopback=settings.allow_loopback_egress, allow_list=settings.egress_allow_list)
    http = GuardedHttpClient(egress)
    callback_http = GuardedHttpClient(egress, max_redirects=0)  # callbacks never follow a redirect
    catalog: TaskCatalog = registry or BuiltinCatalog()
    policy = settings.policy
    telemetry = _telemetry(settings)
    master = master_secret_provider(settings, aws)
    keys = DynamoDbApiKeyStore(aws.dynamodb, settings.api_keys_table_name)
    clock = SystemClock()
    return Services(
        settings=settings,
        tasks=TaskService(
            repository,
            queue,
            catalog,
            policy=policy,
            url_check=egress.check_url,
            parameter_url_check=egress.check_literal_url,
            clock=clock,
            telemetry=telemetry,
        ),
        worker=WorkerService(
            repository, queue, catalog, messages, http, policy=policy, clock=clock, telemetry=telemetry
        ),
        callbacks=CallbackService(
            repository,
            WebhookSender(callback_http, lambda owner: owner_signing_secret(master(), owner)),
            policy=policy,
            clock=clock,
            telemetry=telemetry,
        ),
        reconciler=Reconciler(repository, queue, clock=clock, policy=policy, telemetry=telemetry),
        repository=repository,
        queue=queue,
        messages=messages,
        clock=clock,
        authenticator=Authenticator(keys, ttl_seconds=settings.key_cache_seconds) if settings.auth_required else None,
        master_secret=master,
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        if settings.rate_limit_per_second > 0
        else None,
        keys=keys,
        revocation_check=RevocationCheck(
            DynamoDbKeyRevocations(aws.dynamodb, settings.tasks_table_name), ttl_seconds=settings.key_cache_seconds
        ),
        queue_stats=SqsQueueStats(
            aws.sqs,
            [
                ("TasksQueue", "tasks", settings.tasks_queue_url),
                ("IoTasksQueue", "tasks", settings.io_tasks_queue_url),
                ("PriorityTasksQueue", "tasks", settings.priority_tasks_queue_url),
                ("CallbacksQueue", "callbacks", settings.callbacks_queue_url),
                ("TasksDLQ", "dead-letter", settings.tasks_dlq_url),
                ("CallbacksDLQ", "dead-letter", settings.callbacks_dlq_url),
            ],
        ),
    )


def _telemetry(settings: Settings) -> Any:
    from .adapters.powertools_telemetry import PowertoolsTelemetry
    from .observability import logger, metrics_enabled

    return PowertoolsTelemetry(logger(), settings.metrics_namespace, metrics_enabled=metrics_enabled())


def master_secret_provider(settings: Settings, aws: Any) -> Callable[[], bytes]:
    """The service's master secret (signs stream tokens; per-owner callback secrets derive from
    it): from Secrets Manager when an ARN is configured (cached for five minutes, so a
    rotation is picked up), else from configuration."""
    from .adapters.webhook_sender import secret_bytes

    if not settings.signing_secret_arn:
        if not settings.signing_secret:
            # Only the functions that sign or verify need the secret (the template gives it to
            # those): the others must start without it, and fail loudly if they ever ask.
            def missing() -> bytes:
                raise RuntimeError("configure SIGNING_SECRET_ARN (AWS) or SIGNING_SECRET (local)")

            return missing
        value = secret_bytes(settings.signing_secret)
        return lambda: value
    from .adapters.secrets import SecretsManagerSecret

    return SecretsManagerSecret(lambda: aws.client("secretsmanager"), settings.signing_secret_arn)


@functools.cache
def get_services() -> Services:
    """The process's services, built on first use (a Lambda execution environment reuses them)."""
    return build_services(get_settings())
