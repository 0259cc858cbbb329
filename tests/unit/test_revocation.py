"""Revoking an API key ends its stream links: tokens name their key, and the stream function
looks the key id up among the revoked ones (cached per KEY_CACHE_SECONDS)."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from taskrunner.adapters.memory import InMemoryApiKeyStore, InMemoryKeyRevocations
from taskrunner.config import Settings
from taskrunner.domain.auth import (
    AuthenticationError,
    Authenticator,
    RevocationCheck,
    StreamTokens,
    revoke_key,
)
from taskrunner.entrypoints.api import create_app
from taskrunner.entrypoints.stream import create_stream_app

from infra.keys import create_key
from tests.support.fakes import make_fakes

MASTER = b"test-master-secret"
SUM = {"name": "sum", "parameters": {"a": 1, "b": 2}}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclasses.dataclass
class World:
    store: InMemoryApiKeyStore
    revocations: InMemoryKeyRevocations
    clock: Clock
    api: TestClient
    stream: TestClient
    key: str
    key_id: str
    other_key: str


@pytest.fixture
def world() -> World:
    f = make_fakes()
    store, revocations, clock = InMemoryApiKeyStore(), InMemoryKeyRevocations(), Clock()
    raw, record = create_key(store, "alice", "laptop")
    other, _ = create_key(store, "alice", "server")
    f.services.settings = dataclasses.replace(
        Settings(), stream_poll_seconds=0.01, stream_heartbeat_seconds=60, stream_max_seconds=5
    )
    f.services.authenticator = Authenticator(store, ttl_seconds=60, clock=clock)
    f.services.revocation_check = RevocationCheck(revocations, ttl_seconds=60, clock=clock)
    f.services.master_secret = lambda: MASTER
    return World(
        store,
        revocations,
        clock,
        TestClient(create_app(lambda: f.services)),
        TestClient(create_stream_app(lambda: f.services)),
        raw,
        record.key_id,
        other,
    )


def stream_link(w: World, key: str) -> str:
    answer = w.api.post("/api/tasks", json=SUM, headers={"X-Api-Key": key})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["links"]["stream"])


def test_stream_tokens_name_their_key_and_the_name_is_signed():
    tokens = StreamTokens(MASTER)
    token = tokens.issue("t1", "alice", "k1")
    grant = tokens.grant(token, "t1")
    assert (grant.owner, grant.key_id) == ("alice", "k1")
    assert tokens.grant(tokens.issue("t1", "alice"), "t1").key_id is None
    import base64
    import json

    payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "k": "k2"}).encode()).decode().rstrip("=")
    with pytest.raises(AuthenticationError):
        tokens.grant(f"{forged}.{sig}", "t1")


def test_revocation_check_looks_up_once_per_window_and_remembers_revocations():
    revocations, clock = InMemoryKeyRevocations(), Clock()
    check = RevocationCheck(revocations, ttl_seconds=60, clock=clock)
    for _ in range(100):
        check.ensure_active("k1")
    assert revocations.lookups == 1
    revocations.record("k1", "alice", "now")
    clock.t += 59
    check.ensure_active("k1")  # still within the window
    clock.t += 1
    with pytest.raises(AuthenticationError, match="revoked"):
        check.ensure_active("k1")
    lookups = revocations.lookups
    clock.t += 3600
    with pytest.raises(AuthenticationError, match="revoked"):
        check.ensure_active("k1")
    assert revocations.lookups == lookups  # final: never looked up again


def test_revoke_key_records_the_revocation_before_marking_the_key():
    store = InMemoryApiKeyStore()
    _, record = create_key(store, "alice", "a")
    order: list[str] = []

    class Recording(InMemoryKeyRevocations):
        def record(self, key_id: str, owner: str, when: str) -> None:
            assert store.get(record.key_hash).revoked_at is None
            order.append("revocation")
            super().record(key_id, owner, when)

    revocations = Recording()
    assert revoke_key(store, revocations, "nope", "now") is None and not order
    found = revoke_key(store, revocations, record.key_id, "now")
    assert found is not None and found.revoked_at == "now" and order == ["revocation"]
    assert revocations.is_revoked(record.key_id)


def test_a_revoked_keys_stream_link_answers_401_within_the_cache_window(world):
    link = stream_link(world, world.key)
    kept = stream_link(world, world.other_key)
    accept = {"Accept": "application/json"}
    assert world.stream.get(link, headers=accept).status_code == 200
    revoke_key(world.store, world.revocations, world.key_id, "2026-12-03T00:00:00Z")
    world.clock.t += 60
    answer = world.stream.get(link, headers=accept)
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"
    assert world.stream.get(link).status_code == 401  # the event stream too
    assert world.stream.get(kept, headers=accept).status_code == 200  # the owner's other key is unaffected
    # and the API no longer hands out links for it
    assert world.api.post("/api/tasks", json=SUM, headers={"X-Api-Key": world.key}).status_code == 401


def test_an_open_stream_ends_with_an_unauthorized_event_once_its_key_is_revoked(world):
    link = stream_link(world, world.key)
    world.stream.app.state.services_provider().revocation_check = RevocationCheck(world.revocations, ttl_seconds=0)
    calls = {"n": 0}
    original = world.revocations.is_revoked

    def revoked_after_a_while(key_id: str) -> bool:
        calls["n"] += 1
        if calls["n"] == 5:  # revoked while the stream is open
            world.revocations.record(key_id, "alice", "now")
        return original(key_id)

    world.revocations.is_revoked = revoked_after_a_while  # type: ignore[method-assign]
    body = world.stream.get(link).text
    assert body.count("data: {") >= 2  # the task's state, then the revocation
    assert body.rstrip().endswith('"detail": "the API key this stream link was issued to has been revoked"}')
    assert "event: unauthorized" in body


def test_a_stream_opened_with_an_api_key_ends_when_the_key_is_revoked(world):
    task_id = world.api.post("/api/tasks", json=SUM, headers={"X-Api-Key": world.key}).json()["task_id"]
    authenticator = Authenticator(world.store, ttl_seconds=0)
    world.api.app.state.services_provider().authenticator = authenticator
    looked = {"n": 0}
    original = world.store.get

    def get(digest: str):
        looked["n"] += 1
        if looked["n"] == 4:
            world.store.revoke(world.key_id, "now")
        return original(digest)

    world.store.get = get  # type: ignore[method-assign]
    body = world.api.get(f"/api/tasks/{task_id}", headers={"X-Api-Key": world.key}).text
    assert "event: unauthorized" in body and body.rstrip().endswith("}")
