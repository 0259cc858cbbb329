"""One way to assemble a stack from template.yaml: provision its tables, queues and secrets on
an endpoint, name them as the functions' settings, and seed an API key. Used by the local
runner (`make run`), the integration tests and the benchmarks."""

from __future__ import annotations

import dataclasses
from typing import Any

from taskrunner.config import Settings

from .provision import STACK, provision
from .template import Resolver, evaluate_conditions, load_template, parameter_defaults


@dataclasses.dataclass
class Assembly:
    template: dict[str, Any]
    resolver: Resolver

    @property
    def physical(self) -> dict[str, dict[str, str]]:
        return self.resolver.physical

    def ref(self, logical: str) -> str:
        return str(self.physical[logical]["Ref"])

    def settings(self, **overrides: Any) -> Settings:
        """Settings naming the provisioned resources (as the template's environment does on
        AWS), plus ``overrides``."""
        named: dict[str, Any] = {
            "tasks_table_name": self.ref("TasksTable"),
            "messages_table_name": self.ref("MessagesTable"),
            "tasks_queue_url": self.ref("TasksQueue"),
            "io_tasks_queue_url": self.ref("IoTasksQueue"),
            "priority_tasks_queue_url": self.ref("PriorityTasksQueue"),
            "callbacks_queue_url": self.ref("CallbacksQueue"),
            "api_keys_table_name": self.ref("ApiKeysTable"),
        }
        return Settings(**{**named, **overrides})

    def seed_key(self, session: Any, endpoint_url: str | None, owner: str, label: str, raw: str | None = None) -> str:
        """An API key of ``owner`` in the stack's keys table (``raw``: that very key)."""
        from taskrunner.adapters.dynamodb_keys import DynamoDbApiKeyStore

        from ..keys import create_key

        store = DynamoDbApiKeyStore(session.client("dynamodb", endpoint_url=endpoint_url), self.ref("ApiKeysTable"))
        key, _ = create_key(store, owner, label, raw)
        return key


def assemble(
    session: Any,
    endpoint_url: str | None,
    *,
    prefix: str = STACK,
    region: str = "us-east-1",
    secret_values: dict[str, str] | None = None,
    template: dict[str, Any] | None = None,
) -> Assembly:
    """template.yaml's resources made on the endpoint (idempotently), with its parameters'
    defaults and conditions."""
    template = template if template is not None else load_template()
    resolver = Resolver(parameters=parameter_defaults(template), physical={}, region=region)
    resolver.conditions = evaluate_conditions(template, resolver)
    provision(template, resolver, session, endpoint_url, prefix, secret_values)
    return Assembly(template, resolver)
