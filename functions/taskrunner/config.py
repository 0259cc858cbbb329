"""Settings: every environment variable the functions read, in one place, read on demand."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

from .domain.policy import Policy


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
    # the dead-letter queues: only the API reads them (their depths: the monitor, the opt-in /api/metrics)
    tasks_dlq_url: str = ""
    callbacks_dlq_url: str = ""
    metrics_endpoint_enabled: bool = False
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
    stream_poll_seconds: float = 0.25
    stream_heartbeat_seconds: float = 5.0
    stream_max_seconds: float = 900.0
    docs_enabled: bool = True
    key_cache_seconds: float = 60.0
    aws_connect_timeout_seconds: float = 1.0
    aws_read_timeout_seconds: float = 1.5
    aws_total_max_attempts: int = 2
    policy: Policy = dataclasses.field(default_factory=Policy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables; a variable that is not set keeps the default."""
        e = os.environ if env is None else env
        policy = _overrides(e, _POLICY_ENV, Policy())
        values = _overrides(e, _SETTINGS_ENV, cls())
        region = e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
        values["endpoint_url"] = e.get("AWS_ENDPOINT_URL") or None
        values["stream_url"] = str(values.get("stream_url", "")).rstrip("/")
        allow = e.get("EGRESS_ALLOW_LIST", "")
        values["egress_allow_list"] = tuple(x.strip() for x in allow.split(",") if x.strip())
        return cls(policy=Policy(**policy), **values)


# environment variable -> field; values are parsed as the field's default is typed
_SETTINGS_ENV = {
    "TASKS_TABLE_NAME": "tasks_table_name",
    "MESSAGES_TABLE_NAME": "messages_table_name",
    "API_KEYS_TABLE_NAME": "api_keys_table_name",
    "TASKS_QUEUE_URL": "tasks_queue_url",
    "IO_TASKS_QUEUE_URL": "io_tasks_queue_url",
    "PRIORITY_TASKS_QUEUE_URL": "priority_tasks_queue_url",
    "CALLBACKS_QUEUE_URL": "callbacks_queue_url",
    "TASKS_DLQ_URL": "tasks_dlq_url",
    "CALLBACKS_DLQ_URL": "callbacks_dlq_url",
    "METRICS_ENDPOINT_ENABLED": "metrics_endpoint_enabled",
    "STREAM_URL": "stream_url",
    "DEFAULT_OWNER": "default_owner",
    "ALLOW_LOOPBACK_EGRESS": "allow_loopback_egress",
    "SIGNING_SECRET": "signing_secret",
    "SIGNING_SECRET_ARN": "signing_secret_arn",
    "AUTH_REQUIRED": "auth_required",
    "STREAM_TOKEN_TTL_SECONDS": "stream_token_ttl_seconds",
    "STREAM_ACCEPT_API_KEYS": "stream_accept_api_keys",
    "RATE_LIMIT_PER_SECOND": "rate_limit_per_second",
    "RATE_LIMIT_BURST": "rate_limit_burst",
    "MAX_PARAMETERS_BYTES": "max_parameters_bytes",
    "POWERTOOLS_METRICS_NAMESPACE": "metrics_namespace",
    "MAX_BODY_BYTES": "max_body_bytes",
    "STREAM_POLL_SECONDS": "stream_poll_seconds",
    "STREAM_HEARTBEAT_SECONDS": "stream_heartbeat_seconds",
    "STREAM_MAX_SECONDS": "stream_max_seconds",
    "DOCS_ENABLED": "docs_enabled",
    "KEY_CACHE_SECONDS": "key_cache_seconds",
    "AWS_CONNECT_TIMEOUT_SECONDS": "aws_connect_timeout_seconds",
    "AWS_READ_TIMEOUT_SECONDS": "aws_read_timeout_seconds",
    "AWS_TOTAL_MAX_ATTEMPTS": "aws_total_max_attempts",
}
_POLICY_ENV = {
    "DEFAULT_MAX_ATTEMPTS": "default_max_attempts",
    "MAX_TASK_TIMEOUT_SECONDS": "max_timeout_seconds",
    "PENDING_GRACE_SECONDS": "pending_grace_seconds",
    "LEASE_GRACE_SECONDS": "lease_grace_seconds",
    "RETRY_BASE_SECONDS": "retry_base_seconds",
    "RETRY_CAP_SECONDS": "retry_cap_seconds",
    "RESULT_MAX_BYTES": "result_max_bytes",
    "CALLBACK_MAX_ATTEMPTS": "callback_max_attempts",
    "CALLBACK_RETRY_BASE_SECONDS": "callback_base_seconds",
    "CALLBACK_RETRY_CAP_SECONDS": "callback_cap_seconds",
    "CALLBACK_TIMEOUT_SECONDS": "callback_timeout_seconds",
    "DEFAULT_MAX_RUNTIME_SECONDS": "default_max_runtime_seconds",
    "MAX_RUNTIME_SECONDS": "max_runtime_limit_seconds",
    "CHECKPOINT_MAX_BYTES": "checkpoint_max_bytes",
}


def _overrides(env: Mapping[str, str], names: Mapping[str, str], defaults: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variable, field in names.items():
        if variable in env:
            default = getattr(defaults, field)
            raw = env[variable]
            if isinstance(default, bool):
                out[field] = _bool(raw)
            elif isinstance(default, int | float):
                out[field] = type(default)(raw)
            else:
                out[field] = raw
    return out


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use (never at import)."""
    return Settings.from_env()
