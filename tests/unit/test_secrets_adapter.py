"""The master secret's adapter: cached, read again after its age, SDK errors translated."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from taskrunner.adapters.secrets import SecretsManagerSecret
from taskrunner.domain.errors import DependencyUnavailableError


class FakeSecrets:
    def __init__(self) -> None:
        self.values = ["first-secret", "second-secret"]
        self.calls = 0
        self.fail = False

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        if self.fail:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        self.calls += 1
        return {"SecretString": self.values[min(self.calls, len(self.values)) - 1]}


def test_read_once_cached_then_read_again_after_its_age():
    fake, now = FakeSecrets(), [0.0]
    secret = SecretsManagerSecret(lambda: fake, "arn:secret", max_age_seconds=300, clock=lambda: now[0])
    first = secret()
    assert secret() == first and fake.calls == 1
    now[0] = 301
    assert secret() != first and fake.calls == 2


def test_an_unreachable_secrets_manager_is_a_dependency_error():
    fake = FakeSecrets()
    fake.fail = True
    with pytest.raises(DependencyUnavailableError, match="Secrets Manager"):
        SecretsManagerSecret(lambda: fake, "arn:secret")()
