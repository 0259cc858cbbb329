"""API keys, per-owner secrets and stream tokens. Pure: the key store is a port.

- An API key looks like ``tr_<key_id>_<secret>``; only its SHA-256 is stored.
- Each owner's callback signing secret is derived from the service's master secret
  (HMAC-SHA256(master, "callback:" + owner)), so secrets differ per owner and rotate
  together with the master secret.
- A stream token is ``<base64url payload>.<base64url HMAC>`` binding a task, its owner,
  the id of the API key it was issued to, and an expiry; the Function URL accepts it instead
  of an API key. Revoking the key ends its tokens too: revocations are recorded where the
  stream function can read them (a ``KeyRevocations`` port), and ``RevocationCheck`` looks
  a key id up at most once per cache window.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from .errors import TaskRunnerError


class AuthenticationError(TaskRunnerError):
    """No credentials, or credentials that are not valid (HTTP 401)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    key_hash: str
    owner: str
    name: str
    created_at: str
    revoked_at: str | None = None

    def to_public(self) -> dict[str, str | None]:
        return {
            "key_id": self.key_id,
            "owner": self.owner,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who presented a key: the owner and the id of the (active) key."""

    owner: str
    key_id: str | None = None


class ApiKeyStore(Protocol):
    def get(self, key_hash: str) -> ApiKeyRecord | None: ...

    def put(self, record: ApiKeyRecord) -> None: ...

    def all(self) -> list[ApiKeyRecord]: ...

    def revoke(self, key_id: str, when: str) -> ApiKeyRecord | None: ...


class KeyRevocations(Protocol):
    """Revoked key ids, readable by the stream function (which cannot read the key table)."""

    def record(self, key_id: str, owner: str, when: str) -> None: ...

    def is_revoked(self, key_id: str) -> bool: ...


def revoke_key(store: ApiKeyStore, revocations: KeyRevocations, key_id: str, when: str) -> ApiKeyRecord | None:
    """Revoke a key: first record the revocation for the stream function, then mark the key,
    so a failure in between leaves the key usable on the API (the caller sees the error and
    runs it again) but never a revoked key whose stream links keep working."""
    record = next((r for r in store.all() if r.key_id == key_id), None)
    if record is None:
        return None
    revocations.record(key_id, record.owner, when)
    return store.revoke(key_id, when)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_raw_key() -> tuple[str, str]:
    key_id = secrets.token_hex(4)
    return key_id, f"tr_{key_id}_{secrets.token_urlsafe(32)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, purpose.encode(), hashlib.sha256).digest()


def owner_signing_secret(master: bytes, owner: str) -> str:
    """The Standard Webhooks secret (``whsec_...``) that signs this owner's callbacks."""
    return "whsec_" + base64.b64encode(derive(master, f"callback:{owner}")).decode()


class Authenticator:
    """Resolves an API key to its owner, caching answers briefly (keys are looked up per request)."""

    def __init__(
        self, store: ApiKeyStore, *, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Identity | None]] = {}

    def owner_for(self, raw_key: str | None) -> str:
        return self.identify(raw_key).owner

    def identify(self, raw_key: str | None) -> Identity:
        if not raw_key:
            raise AuthenticationError("missing API key: send X-Api-Key or Authorization: Bearer")
        if len(raw_key) > 200 or not raw_key.startswith("tr_"):
            raise AuthenticationError("invalid API key")
        digest = hash_key(raw_key)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._ttl:
            identity = hit[1]
        else:
            record = self._store.get(digest)
            active = record is not None and record.revoked_at is None
            identity = Identity(record.owner, record.key_id) if record is not None and active else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, identity)
        if identity is None:
            raise AuthenticationError("invalid API key")
        return identity


class RevocationCheck:
    """Whether a key id is still active, from ``KeyRevocations``, looking each id up at most
    once per ``ttl_seconds`` (a revoked id is remembered for good: revocation is final)."""

    def __init__(
        self, revocations: KeyRevocations, *, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._revocations = revocations
        self._ttl = ttl_seconds
        self._clock = clock
        self._checked: dict[str, float] = {}
        self._revoked: set[str] = set()

    def ensure_active(self, key_id: str) -> None:
        if key_id in self._revoked:
            raise AuthenticationError(REVOKED)
        now = self._clock()
        checked = self._checked.get(key_id)
        if checked is not None and now - checked < self._ttl:
            return
        if self._revocations.is_revoked(key_id):
            self._revoked.add(key_id)
            self._checked.pop(key_id, None)
            raise AuthenticationError(REVOKED)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[key_id] = now


REVOKED = "the API key this stream link was issued to has been revoked"


@dataclasses.dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a valid stream token grants: its owner, and the key it was issued to (None for
    tokens issued without keys, where AUTH_REQUIRED is off)."""

    owner: str
    key_id: str | None = None


class StreamTokens:
    def __init__(self, master: bytes, *, ttl_seconds: int = 3600, clock: Callable[[], float] = time.time) -> None:
        self._key = derive(master, "stream-token")
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, task_id: str, owner: str, key_id: str | None = None) -> str:
        claims: dict[str, object] = {"t": task_id, "o": owner, "e": int(self._clock()) + self._ttl}
        if key_id is not None:
            claims["k"] = key_id
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{_b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())}"

    def verify(self, token: str, task_id: str) -> str:
        """The owner the token was issued to, or AuthenticationError."""
        return self.grant(token, task_id).owner

    def grant(self, token: str, task_id: str) -> StreamGrant:
        """The owner and key id the token was issued to, or AuthenticationError."""
        try:
            payload, signature = token.split(".", 1)
            expected = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(expected, signature):
                raise AuthenticationError("invalid stream token")
            data = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            raise AuthenticationError("invalid stream token") from None
        if data.get("t") != task_id:
            raise AuthenticationError("stream token is for another task")
        if int(data.get("e", 0)) < self._clock():
            raise AuthenticationError("stream token expired")
        key_id = data.get("k")
        return StreamGrant(str(data["o"]), str(key_id) if key_id is not None else None)


class RateLimiter:
    """Token bucket per owner (the local runner's stand-in for API Gateway throttling)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, owner: str) -> bool:
        if self._rate <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(owner, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[owner] = (tokens, now)
            return False
        self._buckets[owner] = (tokens - 1, now)
        return True
