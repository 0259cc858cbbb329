"""Settings: every environment variable the functions read, in one place, read on demand."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping

from .domain.service import Policy


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class Settings:
    region: str = "us-east-1"
    endpoint_url: str | None = None
    tasks_table_name: str = "tasks"
    messages_table_name: str = "messages"
    tasks_queue_url: str = ""
    io_tasks_queue_url: str = ""
    priority_tasks_queue_url: str = ""
    callbacks_queue_url: str = ""
    stream_url: str = ""
    default_owner: str = "default"
    allow_loopback_egress: bool = False
    egress_allow_list: tuple[str, ...] = ()
    signing_secret: str = ""
    signing_secret_arn: str = ""
    api_keys_table_name: str = "api-keys"
    auth_required: bool = True
    stream_token_ttl_seconds: int = 3600
    stream_accept_api_keys: bool = False
    rate_limit_per_second: float = 0.0
    rate_limit_burst: float = 50.0
    max_parameters_bytes: int = 32 * 1024
    metrics_namespace: str = "taskrunner"
    max_body_bytes: int = 256 * 1024
    max_page_size: int = 100
    stream_poll_seconds: float = 0.25
    stream_heartbeat_seconds: float = 5.0
    stream_max_seconds: float = 900.0
    docs_enabled: bool = True
    policy: Policy = dataclasses.field(default_factory=Policy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return e.get(name, default)

        policy = Policy(
            default_max_attempts=int(get("DEFAULT_MAX_ATTEMPTS", "3")),
            max_timeout_seconds=int(get("MAX_TASK_TIMEOUT_SECONDS", "840")),
            pending_grace_seconds=int(get("PENDING_GRACE_SECONDS", "120")),
            lease_grace_seconds=int(get("LEASE_GRACE_SECONDS", "30")),
            retry_base_seconds=float(get("RETRY_BASE_SECONDS", "2")),
            retry_cap_seconds=float(get("RETRY_CAP_SECONDS", "300")),
            result_max_bytes=int(get("RESULT_MAX_BYTES", str(256 * 1024))),
            callback_max_attempts=int(get("CALLBACK_MAX_ATTEMPTS", "8")),
            callback_base_seconds=float(get("CALLBACK_RETRY_BASE_SECONDS", "30")),
            callback_cap_seconds=float(get("CALLBACK_RETRY_CAP_SECONDS", "3600")),
            callback_timeout_seconds=float(get("CALLBACK_TIMEOUT_SECONDS", "10")),
        )
        allow = tuple(x.strip() for x in get("EGRESS_ALLOW_LIST").split(",") if x.strip())
        return cls(
            region=get("AWS_REGION", get("AWS_DEFAULT_REGION", "us-east-1")),
            endpoint_url=get("AWS_ENDPOINT_URL") or None,
            tasks_table_name=get("TASKS_TABLE_NAME", "tasks"),
            messages_table_name=get("MESSAGES_TABLE_NAME", "messages"),
            tasks_queue_url=get("TASKS_QUEUE_URL"),
            io_tasks_queue_url=get("IO_TASKS_QUEUE_URL"),
            priority_tasks_queue_url=get("PRIORITY_TASKS_QUEUE_URL"),
            callbacks_queue_url=get("CALLBACKS_QUEUE_URL"),
            stream_url=get("STREAM_URL").rstrip("/"),
            default_owner=get("DEFAULT_OWNER", "default"),
            allow_loopback_egress=_bool(get("ALLOW_LOOPBACK_EGRESS", "false")),
            egress_allow_list=allow,
            signing_secret=get("SIGNING_SECRET"),
            signing_secret_arn=get("SIGNING_SECRET_ARN"),
            api_keys_table_name=get("API_KEYS_TABLE_NAME", "api-keys"),
            auth_required=_bool(get("AUTH_REQUIRED", "true")),
            stream_token_ttl_seconds=int(get("STREAM_TOKEN_TTL_SECONDS", "3600")),
            stream_accept_api_keys=_bool(get("STREAM_ACCEPT_API_KEYS", "false")),
            rate_limit_per_second=float(get("RATE_LIMIT_PER_SECOND", "0")),
            rate_limit_burst=float(get("RATE_LIMIT_BURST", "50")),
            max_parameters_bytes=int(get("MAX_PARAMETERS_BYTES", str(32 * 1024))),
            metrics_namespace=get("POWERTOOLS_METRICS_NAMESPACE", "taskrunner"),
            max_body_bytes=int(get("MAX_BODY_BYTES", str(256 * 1024))),
            max_page_size=int(get("MAX_PAGE_SIZE", "100")),
            stream_poll_seconds=float(get("STREAM_POLL_SECONDS", "0.25")),
            stream_heartbeat_seconds=float(get("STREAM_HEARTBEAT_SECONDS", "5")),
            stream_max_seconds=float(get("STREAM_MAX_SECONDS", "900")),
            docs_enabled=_bool(get("DOCS_ENABLED", "true")),
            policy=policy,
        )


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use (never at import)."""
    return Settings.from_env()
