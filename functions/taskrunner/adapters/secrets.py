"""The service's master secret from Secrets Manager, cached (a rotation is picked up)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .aws import translated
from .webhook_sender import secret_bytes


class SecretsManagerSecret:
    """Calling it gives the secret's bytes: read with GetSecretValue at first use and again once
    ``max_age_seconds`` have passed. ``client`` builds the boto3 client when first needed."""

    def __init__(
        self,
        client: Callable[[], Any],
        secret_id: str,
        *,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._clock = clock
        self._value: bytes | None = None
        self._read_at = 0.0

    def __call__(self) -> bytes:
        if self._value is None or self._clock() - self._read_at > self._max_age:
            with translated("Secrets Manager"):
                answer = self._client().get_secret_value(SecretId=self._secret_id)
            self._value, self._read_at = secret_bytes(answer["SecretString"]), self._clock()
        return self._value
