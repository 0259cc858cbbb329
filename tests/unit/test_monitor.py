"""The monitor's endpoints (/api/stats, /api/queues, /api/stats/series, /api/search) on fakes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from taskrunner.adapters.memory import InMemoryApiKeyStore, InMemoryQueueStats
from taskrunner.domain.auth import Authenticator
from taskrunner.domain.models import TaskStatus, iso
from taskrunner.domain.monitor import percentile
from taskrunner.domain.service import SubmitRequest
from taskrunner.entrypoints.api import create_app

from infra.keys import create_key
from tests.support.fakes import make_fakes


@pytest.fixture
def world():
    fakes = make_fakes()
    store = InMemoryApiKeyStore()
    alice, _ = create_key(store, "alice", "monitor")
    bob, _ = create_key(store, "bob", "monitor")
    fakes.services.authenticator = Authenticator(store)
    fakes.services.queue_stats = InMemoryQueueStats(
        [
            {"name": "TasksQueue", "kind": "tasks", "visible": 3, "in_flight": 2, "delayed": 1},
            {"name": "TasksDLQ", "kind": "dead-letter", "visible": 1, "in_flight": 0, "delayed": 0},
        ]
    )
    client = TestClient(create_app(lambda: fakes.services))
    return fakes, client, {"X-Api-Key": alice}, {"X-Api-Key": bob}


def submit(fakes, owner: str, n: int = 1) -> list[str]:
    ids = []
    for _ in range(n):
        ids.append(
            fakes.services.tasks.submit(owner, SubmitRequest(name="sleep", parameters={"seconds": 1})).task.task_id
        )
        fakes.clock.advance(1)
    return ids


def finish(fakes, task_id: str, status: TaskStatus, *, waited: float, ran: float) -> None:
    task = fakes.repo.tasks[task_id]
    start = fakes.clock.current
    fakes.repo.tasks[task_id] = task.__class__(
        **{
            **{f: getattr(task, f) for f in task.__dataclass_fields__},
            "status": status,
            "created_at": iso(start),
            "started_at": iso(start.__class__.fromtimestamp(start.timestamp() + waited, start.tzinfo)),
            "completed_at": iso(start.__class__.fromtimestamp(start.timestamp() + waited + ran, start.tzinfo)),
        }
    )


def test_every_monitor_route_needs_a_key(world):
    _, client, _, _ = world
    for path in ("/api/stats", "/api/queues", "/api/stats/series", "/api/search?id=abcdef"):
        assert client.get(path).status_code == 401, path


def test_stats_counts_the_callers_tasks_by_status(world):
    fakes, client, alice, bob = world
    ids = submit(fakes, "alice", 3)
    submit(fakes, "bob", 2)
    finish(fakes, ids[0], TaskStatus.COMPLETED, waited=1, ran=2)
    answer = client.get("/api/stats", headers=alice)
    assert answer.status_code == 200
    body = answer.json()
    assert body["counts"] == {"PENDING": 2, "RUNNING": 0, "RETRYING": 0, "COMPLETED": 1, "FAILED": 0, "CANCELLED": 0}
    assert body["total"] == 3 and body["complete"] is True and body["range"] == "all"
    assert body["oldest_pending_seconds"] is not None
    assert client.get("/api/stats", headers=bob).json()["total"] == 2


def test_stats_range_limits_by_creation_time(world):
    fakes, client, alice, _ = world
    submit(fakes, "alice", 2)
    fakes.clock.advance(3600)  # an hour later
    submit(fakes, "alice", 1)
    assert client.get("/api/stats?range=15m", headers=alice).json()["total"] == 1
    assert client.get("/api/stats?range=24h", headers=alice).json()["total"] == 3


def test_stats_rejects_an_unknown_range(world):
    _, client, alice, _ = world
    answer = client.get("/api/stats?range=2w", headers=alice)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "range"]


def test_queues_reports_each_queues_depth(world):
    _, client, alice, _ = world
    body = client.get("/api/queues", headers=alice).json()
    assert [q["name"] for q in body["queues"]] == ["TasksQueue", "TasksDLQ"]
    assert body["queues"][0] == {"name": "TasksQueue", "kind": "tasks", "visible": 3, "in_flight": 2, "delayed": 1}


def test_series_buckets_throughput_and_latency_per_minute(world):
    fakes, client, alice, _ = world
    ids = submit(fakes, "alice", 4)
    for k, task_id in enumerate(ids[:3]):
        finish(fakes, task_id, TaskStatus.COMPLETED, waited=0.5, ran=k + 1)
    finish(fakes, ids[3], TaskStatus.FAILED, waited=0.5, ran=1)
    fakes.clock.advance(30)
    body = client.get("/api/stats/series?minutes=10", headers=alice).json()
    assert len(body["t"]) == 10 == len(body["completed"]) == len(body["run_p95"])
    assert sum(body["completed"]) == 3 and sum(body["failed"]) == 1
    assert max(p for p in body["run_p95"] if p is not None) == 3.0
    assert [p for p in body["wait_p50"] if p is not None] == [0.5]
    assert body["sampled"] == 4 and body["complete"] is True


@pytest.mark.parametrize("minutes", ["0", "4", "181", "x"])
def test_series_rejects_minutes_out_of_range(world, minutes):
    _, client, alice, _ = world
    answer = client.get(f"/api/stats/series?minutes={minutes}", headers=alice)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "minutes"]


def test_search_by_full_and_short_id(world):
    fakes, client, alice, bob = world
    [task_id] = submit(fakes, "alice")
    for query in (task_id, task_id[:8], task_id[:6].upper()):
        answer = client.get(f"/api/search?id={query}", headers=alice)
        assert answer.status_code == 200, answer.text
        assert [m["task_id"] for m in answer.json()["matches"]] == [task_id]
    # another owner's task is not found, by either
    assert client.get(f"/api/search?id={task_id}", headers=bob).status_code == 404
    assert client.get(f"/api/search?id={task_id[:8]}", headers=bob).status_code == 404


@pytest.mark.parametrize(("query", "why"), [("abc", "at least 6"), ("zzzzzzzz", "0-9, a-f"), ("", "at least 6")])
def test_search_rejects_what_cannot_be_an_id(world, query, why):
    _, client, alice, _ = world
    answer = client.get(f"/api/search?id={query}", headers=alice)
    assert answer.status_code == 422
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["query", "id"]
    assert why in problem["msg"] or "at least 6 characters" in problem["msg"]


def test_search_of_an_unknown_prefix_says_what_it_looked_at(world):
    fakes, client, alice, _ = world
    submit(fakes, "alice", 2)
    answer = client.get("/api/search?id=ffffff0", headers=alice)
    if answer.status_code == 200:  # one of the two random ids may start so; look for another
        answer = client.get("/api/search?id=0000000f", headers=alice)
    assert answer.status_code == 404
    assert "any of your tasks" in answer.json()["detail"]


def test_list_answers_304_to_its_own_etag(world):
    fakes, client, alice, _ = world
    submit(fakes, "alice", 2)
    first = client.get("/api/tasks", headers=alice)
    assert first.status_code == 200 and first.json()["total"] == 2
    again = client.get("/api/tasks", headers={**alice, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    submit(fakes, "alice")
    changed = client.get("/api/tasks", headers={**alice, "If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.json()["total"] == 3


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95
