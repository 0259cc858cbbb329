"""CallbackSender: POSTs a task's JSON signed the Standard Webhooks way.

Headers: ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. The secret may be
given as ``whsec_<base64>`` (the Standard Webhooks form) or as plain text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from ..domain.errors import CallbackRedirectError


def secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


class WebhookSender:
    """Signs with the owner's secret: ``secret_for`` maps an owner to its ``whsec_`` secret.

    ``http`` must not follow redirects (``GuardedHttpClient(max_redirects=0)``): a 3xx answer
    is a failed attempt, recorded with its Location, and nothing is sent anywhere else."""

    def __init__(self, http: Any, secret_for: Callable[[str], str], *, clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._secret_for = secret_for
        self._clock = clock

    def send(self, url: str, payload: bytes, *, message_id: str, timeout: float, owner: str = "") -> int:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret_for(owner), message_id, timestamp, payload),
        }
        response = self._http.request("POST", url, headers=headers, body=payload, timeout=timeout)
        status = int(response.status)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            raise CallbackRedirectError(
                f"receiver answered HTTP {status} redirecting to {location[:300] or '(no Location)'}; "
                "callbacks do not follow redirects"
            )
        return status
