"""Composition root: settings -> clients -> adapters -> services. Built once per process."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

from .config import Settings, get_settings
from .domain.service import CallbackService, Reconciler, TaskService, WorkerService
from .tasks.registry import TaskRegistry, build_registry


@dataclasses.dataclass
class Services:
    settings: Settings
    tasks: TaskService
    worker: WorkerService
    callbacks: CallbackService
    reconciler: Reconciler
    repository: Any
    queue: Any
    messages: Any


def build_services(settings: Settings, *, registry: TaskRegistry | None = None, clients: Any = None) -> Services:
    from .adapters.aws import AwsClients
    from .adapters.dynamodb_messages import DynamoDbMessageStore
    from .adapters.dynamodb_tasks import DynamoDbTaskRepository
    from .adapters.egress import EgressPolicy, GuardedHttpClient
    from .adapters.sqs_queue import SqsTaskQueue
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
    catalog = registry or build_registry()
    policy = settings.policy
    secret_provider = _secret_provider(settings, aws)
    return Services(
        settings=settings,
        tasks=TaskService(repository, queue, catalog, policy=policy, url_check=egress.check_url),
        worker=WorkerService(repository, queue, catalog, messages, http, policy=policy),
        callbacks=CallbackService(repository, WebhookSender(http, secret_provider), policy=policy),
        reconciler=Reconciler(repository, queue, policy=policy),
        repository=repository,
        queue=queue,
        messages=messages,
    )


def _secret_provider(settings: Settings, aws: Any) -> Callable[[], str]:
    """The callback signing secret: from Secrets Manager when an ARN is configured (cached
    for five minutes, so a rotation is picked up), else from configuration."""
    if not settings.callback_secret_arn:
        value = settings.callback_signing_secret
        return lambda: value
    cache: dict[str, Any] = {"value": None, "at": 0.0}

    def provider() -> str:
        if cache["value"] is None or time.monotonic() - cache["at"] > 300:
            answer = aws.client("secretsmanager").get_secret_value(SecretId=settings.callback_secret_arn)
            cache["value"], cache["at"] = answer["SecretString"], time.monotonic()
        return str(cache["value"])

    return provider


@functools.cache
def get_services() -> Services:
    """The process's services, built on first use (a Lambda execution environment reuses them)."""
    return build_services(get_settings())
