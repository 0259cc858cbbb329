"""Authentication, tenant isolation, stream tokens, limits and throttling."""

import dataclasses

import pytest
from fastapi.testclient import TestClient
from taskrunner.adapters.memory import InMemoryApiKeyStore
from taskrunner.config import Settings
from taskrunner.domain.auth import AuthenticationError, Authenticator, RateLimiter, StreamTokens
from taskrunner.entrypoints.api import create_app
from taskrunner.entrypoints.stream import create_stream_app

from infra.keys import create_key
from tests.support.fakes import make_fakes

MASTER = b"test-master-secret"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def world():
    f = make_fakes()
    store = InMemoryApiKeyStore()
    alice, _ = create_key(store, "alice", "a")
    bob, _ = create_key(store, "bob", "b")
    revoked, record = create_key(store, "carol", "c")
    store.revoke(record.key_id, "2026-11-19T00:00:00Z")
    f.services.authenticator = Authenticator(store)
    f.services.master_secret = lambda: MASTER
    client = TestClient(create_app(lambda: f.services))
    return f, client, {"alice": alice, "bob": bob, "revoked": revoked}


def h(key):
    return {"X-Api-Key": key}


def test_keys_are_stored_only_as_hashes(world):
    f, _, keys = world
    store = f.services.authenticator._store
    for record in store.all():
        assert record.key_hash not in keys.values() and len(record.key_hash) == 64
    assert not any(raw in repr(store.records) for raw in keys.values())


@pytest.mark.parametrize(
    "path",
    ["/api/tasks", "/api/tasks/x/state", "/api/tasks/x", "/api/task-types", "/api/messages", "/api/callback-secret"],
)
def test_every_api_route_requires_a_key(world, path):
    _, client, keys = world
    assert client.get(path).status_code == 401
    assert client.get(path, headers=h("tr_nope_nope")).status_code == 401
    assert client.get(path, headers=h(keys["revoked"])).status_code == 401
    response = client.get(path, headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/tasks", json={"name": "sum", "parameters": {"a": 1, "b": 2}}).status_code == 401
    assert client.post("/api/tasks/x/cancel").status_code == 401


def test_health_stays_open(world):
    _, client, _ = world
    assert client.get("/health").status_code == 200


def test_bearer_and_header_both_work(world):
    _, client, keys = world
    assert client.get("/api/task-types", headers=h(keys["alice"])).status_code == 200
    assert client.get("/api/task-types", headers={"Authorization": f"Bearer {keys['alice']}"}).status_code == 200


def test_tenant_isolation(world):
    f, client, keys = world
    tid = client.post(
        "/api/tasks", json={"name": "sum", "parameters": {"a": 1, "b": 2}}, headers=h(keys["alice"])
    ).json()["task_id"]
    assert f.repo.tasks[tid].owner == "alice"
    assert client.get(f"/api/tasks/{tid}/state", headers=h(keys["alice"])).status_code == 200
    for path in (f"/api/tasks/{tid}/state", f"/api/tasks/{tid}"):
        assert client.get(path, headers={**h(keys["bob"]), "accept": "application/json"}).status_code == 404
    assert client.post(f"/api/tasks/{tid}/cancel", headers=h(keys["bob"])).status_code == 404
    assert client.get("/api/tasks", headers=h(keys["bob"])).json()["tasks"] == []
    assert [t["task_id"] for t in client.get("/api/tasks", headers=h(keys["alice"])).json()["tasks"]] == [tid]
    assert f.repo.tasks[tid].status.value == "PENDING"  # bob's cancel changed nothing


def test_callback_secrets_differ_per_owner(world):
    _, client, keys = world
    a = client.get("/api/callback-secret", headers=h(keys["alice"])).json()
    b = client.get("/api/callback-secret", headers=h(keys["bob"])).json()
    assert (
        a["owner"] == "alice"
        and a["signing_secret"].startswith("whsec_")
        and a["signing_secret"] != b["signing_secret"]
    )


def test_stream_requires_token_or_key_and_checks_owner(world):
    f, client, keys = world
    accepted = client.post(
        "/api/tasks", json={"name": "sum", "parameters": {"a": 1, "b": 2}}, headers=h(keys["alice"])
    ).json()
    tid = accepted["task_id"]
    f.services.worker.run(f.repo.tasks[tid].ref)
    stream = TestClient(create_stream_app(lambda: f.services))
    link = accepted["links"]["stream"]
    assert "token=" in link
    assert stream.get(link).status_code == 200 and '"COMPLETED"' in stream.get(link).text
    assert stream.get(f"/api/tasks/{tid}").status_code == 401
    # as on AWS: the Function URL takes the token only, not API keys
    assert stream.get(f"/api/tasks/{tid}", headers=h(keys["alice"])).status_code == 401
    f.services.settings = dataclasses.replace(f.services.settings, stream_accept_api_keys=True)  # the local runner
    assert stream.get(f"/api/tasks/{tid}", headers=h(keys["alice"])).status_code == 200
    assert stream.get(f"/api/tasks/{tid}", headers=h(keys["bob"])).status_code == 404
    token = link.split("token=")[1]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert stream.get(f"/api/tasks/{tid}?token={forged}").status_code == 401
    other = client.post(
        "/api/tasks", json={"name": "sum", "parameters": {"a": 1, "b": 2}}, headers=h(keys["alice"])
    ).json()["task_id"]
    assert stream.get(f"/api/tasks/{other}?token={token}").status_code == 401  # bound to its task


def test_stream_tokens_expire_and_resist_forgery():
    clock = Clock()
    tokens = StreamTokens(MASTER, ttl_seconds=60, clock=clock)
    token = tokens.issue("t1", "alice")
    assert tokens.verify(token, "t1") == "alice"
    with pytest.raises(AuthenticationError, match="another task"):
        tokens.verify(token, "t2")
    with pytest.raises(AuthenticationError):
        StreamTokens(b"other-master", clock=clock).verify(token, "t1")
    _, sig = token.split(".")
    import base64
    import json

    evil = base64.urlsafe_b64encode(json.dumps({"t": "t1", "o": "bob", "e": 9e12}).encode()).decode().rstrip("=")
    with pytest.raises(AuthenticationError):
        tokens.verify(f"{evil}.{sig}", "t1")
    clock.t += 61
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.verify(token, "t1")


def test_authenticator_caches_briefly_and_sees_revocation_after_ttl():
    store = InMemoryApiKeyStore()
    raw, record = create_key(store, "alice", "a")
    clock = Clock()
    auth = Authenticator(store, ttl_seconds=60, clock=clock)
    assert auth.owner_for(raw) == "alice"
    store.revoke(record.key_id, "now")
    assert auth.owner_for(raw) == "alice"  # cached
    clock.t += 61
    with pytest.raises(AuthenticationError):
        auth.owner_for(raw)


def test_throttling_per_key(world):
    f, client, keys = world
    clock = Clock()
    f.services.rate_limiter = RateLimiter(rate=1, burst=3, clock=clock)
    codes = [client.get("/api/task-types", headers=h(keys["alice"])).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    throttled = client.get("/api/task-types", headers=h(keys["alice"]))
    assert throttled.headers["retry-after"] == "1"
    assert client.get("/api/task-types", headers=h(keys["bob"])).status_code == 200  # other keys unaffected
    clock.t += 2
    assert client.get("/api/task-types", headers=h(keys["alice"])).status_code == 200


def test_size_limits(world):
    f, client, keys = world
    huge = client.post(
        "/api/tasks", content=b"x" * (300 * 1024), headers={**h(keys["alice"]), "content-type": "application/json"}
    )
    assert huge.status_code == 413
    big_params = client.post(
        "/api/tasks",
        json={"name": "message", "parameters": {"content": "x", "pad": "y" * 40_000}},
        headers=h(keys["alice"]),
    )
    assert big_params.status_code == 413 and "parameters" in big_params.json()["detail"]
    big_meta = client.post(
        "/api/tasks",
        json={"name": "sum", "parameters": {"a": 1, "b": 1}, "metadata": {"m": "z" * 9000}},
        headers=h(keys["alice"]),
    )
    assert big_meta.status_code == 422 and big_meta.json()["detail"][0]["loc"] == ["body", "metadata"]
    long_name = client.post("/api/tasks", json={"name": "n" * 500}, headers=h(keys["alice"]))
    assert long_name.status_code == 422
    assert client.get("/api/tasks?limit=1000", headers=h(keys["alice"])).status_code == 422
    bad_key = client.post(
        "/api/tasks",
        json={"name": "sum", "parameters": {"a": 1, "b": 1}},
        headers={**h(keys["alice"]), "Idempotency-Key": "k" * 300},
    )
    assert bad_key.status_code == 422
    assert f.repo.tasks == {}


def test_docs_can_be_turned_off():
    f = make_fakes()
    f.services.settings = dataclasses.replace(Settings(), docs_enabled=False)
    client = TestClient(create_app(lambda: f.services, docs=False))
    assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404
