"""boto3 clients built lazily from Settings; the endpoint comes from AWS_ENDPOINT_URL."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Collection, Iterator
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..config import Settings
from ..domain.errors import DependencyUnavailableError

_lock = threading.Lock()


class AwsClients:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is not None:
            return found
        with _lock:
            if service not in self._clients:
                self._clients[service] = _make_client(service, self._settings)
        return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")


@functools.cache
def _session() -> Any:
    import boto3  # with the first client: building the services does not load it

    return boto3.session.Session()


def client_config(settings: Settings) -> Any:
    """Bounded waits: a dependency that accepts connections but never answers costs at most
    ``attempts * read_timeout`` plus one backoff (under a second), so the API can answer 503
    quickly instead of hanging until API Gateway gives up."""
    return Config(
        region_name=settings.region,
        connect_timeout=settings.aws_connect_timeout_seconds,
        read_timeout=settings.aws_read_timeout_seconds,
        retries={"total_max_attempts": settings.aws_total_max_attempts, "mode": "standard"},
        tcp_keepalive=True,
        max_pool_connections=32,
        # Requests are built by our adapters from typed values; botocore's per-call parameter
        # validation only costs CPU on every request.
        parameter_validation=False,
    )


def _make_client(service: str, settings: Settings) -> Any:
    return _session().client(service, endpoint_url=settings.endpoint_url, config=client_config(settings))


def unavailable(service: str, exc: Exception) -> DependencyUnavailableError:
    return DependencyUnavailableError(service, f"{type(exc).__name__}: {exc}")


CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"


class Refused(Exception):
    """A request the service refused with one of the codes the caller said it expects:
    ``code``, the service's ``response`` (e.g. the item a failed condition found) and the
    SDK's ``error``."""

    def __init__(self, code: str, error: ClientError) -> None:
        super().__init__(code)
        self.code = code
        self.error = error
        self.response: dict[str, Any] = dict(error.response)


@contextlib.contextmanager
def translated(service: str, *, expected: Collection[str] = ()) -> Iterator[None]:
    """The adapters' one translation: an AWS SDK error inside the block is raised as
    DependencyUnavailableError naming ``service`` (the API answers 503, a worker redelivers),
    except an error whose code is ``expected``, raised as Refused for the caller to decide."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in expected:
            raise Refused(code, exc) from exc
        raise unavailable(service, exc) from exc
    except BotoCoreError as exc:
        raise unavailable(service, exc) from exc


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
