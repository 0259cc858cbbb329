"""The monitor's reads on DynamoDB (moto) and SQS: counts, recent tasks, id prefix, queue depths."""

from __future__ import annotations

import time

import pytest
from taskrunner.adapters.dynamodb_tasks import DynamoDbTaskRepository
from taskrunner.adapters.sqs_stats import SqsQueueStats
from taskrunner.domain.models import TaskStatus

from tests.unit.factories import a_task


@pytest.fixture
def repo(aws):
    return DynamoDbTaskRepository(aws.session.client("dynamodb"), aws.ref("TasksTable"))


def make(i, status=TaskStatus.PENDING, owner="default", minute=0):
    return a_task(
        task_id=f"{i:08x}-0000-4000-8000-000000000000",
        owner=owner,
        status=status,
        created_at=f"2026-11-19T09:{minute:02d}:{i % 60:02d}.000Z",
    )


def later() -> float:
    return time.monotonic() + 5


def test_count_by_status_counts_every_page_and_only_the_owners(repo, monkeypatch):
    for i in range(30):
        repo.create(make(i, TaskStatus.COMPLETED if i % 3 else TaskStatus.FAILED, minute=i // 10))
    repo.create(make(99, TaskStatus.COMPLETED, owner="other"))
    real = repo._db.query
    pages = []

    def small_pages(**kwargs):  # DynamoDB pages a count by 1 MB; here by 4 items
        pages.append(kwargs)
        return real(**{**kwargs, "Limit": 4})

    monkeypatch.setattr(repo._db, "query", small_pages)
    assert repo.count_by_status("default", TaskStatus.COMPLETED, since=None, deadline=later()) == (20, True)
    assert all(p["Select"] == "COUNT" and p["IndexName"] == "by-owner-done" for p in pages)
    assert len(pages) > 1
    assert repo.count_by_status("default", TaskStatus.FAILED, since=None, deadline=later()) == (10, True)
    # created at or after 09:02
    since = "2026-11-19T09:02:00.000Z"
    assert repo.count_by_status("default", TaskStatus.COMPLETED, since=since, deadline=later())[0] == 7
    assert repo.count_by_status("default", TaskStatus.RUNNING, since=None, deadline=later()) == (0, True)


def test_count_stops_at_its_deadline_and_says_so(repo, monkeypatch):
    for i in range(48):  # 3 a shard on average: some shard has more than one page of 2
        repo.create(make(i, TaskStatus.COMPLETED))
    real = repo._db.query
    monkeypatch.setattr(repo._db, "query", lambda **kw: real(**{**kw, "Limit": 2}))
    counted, complete = repo.count_by_status("default", TaskStatus.COMPLETED, since=None, deadline=0.0)
    # every shard's first page is read (concurrently), none further once the deadline passed
    assert counted < 48 and complete is False


def test_recent_is_newest_first_bounded_and_since(repo):
    for i in range(12):
        repo.create(make(i, TaskStatus.COMPLETED, minute=i))
    tasks, complete = repo.recent("default", since="2026-11-19T09:05:00.000Z", limit=100, deadline=later())
    assert complete is True
    assert [t.created_at[14:16] for t in tasks] == [f"{m:02d}" for m in range(11, 4, -1)]
    assert tasks[0].status is TaskStatus.COMPLETED
    tasks, complete = repo.recent("default", since="2026-11-19T09:00:00.000Z", limit=3, deadline=later())
    assert len(tasks) == 3 and complete is False


def test_find_by_prefix_and_oldest_pending(repo):
    for i in (0x11, 0x12, 0x21):
        repo.create(make(i))
    repo.create(make(0x13, owner="other"))
    found, looked, complete = repo.find_by_prefix("default", "0000001", max_items=100, deadline=later())
    assert sorted(t.task_id[:8] for t in found) == ["00000011", "00000012"]
    assert looked == 3 and complete is True
    assert repo.find_by_prefix("default", "00000013", max_items=100, deadline=later())[0] == []
    oldest = repo.oldest_in_status("default", TaskStatus.PENDING)
    assert oldest is not None and oldest.task_id.startswith("00000011")
    assert repo.oldest_in_status("nobody", TaskStatus.PENDING) is None


def test_queue_stats_read_each_queues_attributes(aws):
    sqs = aws.session.client("sqs")
    sqs.send_message(QueueUrl=aws.ref("TasksDLQ"), MessageBody="{}")
    sqs.send_message(QueueUrl=aws.ref("TasksQueue"), MessageBody="{}", DelaySeconds=60)
    stats = SqsQueueStats(
        sqs,
        [
            ("TasksQueue", "tasks", aws.ref("TasksQueue")),
            ("TasksDLQ", "dead-letter", aws.ref("TasksDLQ")),
            ("X", "tasks", ""),
        ],
    )
    depths = {d["name"]: d for d in stats.depths()}
    assert set(depths) == {"TasksQueue", "TasksDLQ"}
    assert depths["TasksDLQ"]["visible"] == 1
    assert depths["TasksQueue"]["delayed"] == 1 and depths["TasksQueue"]["visible"] == 0
