"""Listings and the reconciler's due tasks across the index shards, on moto."""

import itertools
import time

import pytest
from taskrunner.adapters.dynamodb_shards import DUE_SHARDS, OWNER_SHARDS, shard_of
from taskrunner.adapters.dynamodb_tasks import DynamoDbTaskRepository
from taskrunner.domain.errors import InvalidCursorError
from taskrunner.domain.models import ACTIVE_STATUSES, Expect, TaskStatus

from tests.unit.factories import a_task

STATUSES = [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.RETRYING]


@pytest.fixture
def repo(aws):
    return DynamoDbTaskRepository(aws.session.client("dynamodb"), aws.ref("TasksTable"))


def make(i, owner="acme", **kw):
    status = kw.pop("status", STATUSES[i % len(STATUSES)])
    return a_task(
        task_id=f"{owner}-{i:04d}",
        owner=owner,
        name="sum" if i % 2 else "sleep",
        status=status,
        created_at=f"2026-11-19T09:{i // 60:02d}:{i % 60:02d}.000Z",
        due_at=None if status.is_terminal else f"2026-11-19T10:{i // 60:02d}:{i % 60:02d}.000Z",
        **kw,
    )


@pytest.fixture
def tasks(repo):
    made = [make(i) for i in range(60)] + [make(i, owner="other") for i in range(10)]
    for task in made:
        repo.create(task)
    return made


def every_page(repo, owner="acme", limit=7, **kw):
    pages, cursor = [], None
    while True:
        page = repo.list(owner, statuses=kw.get("statuses"), name=kw.get("name"), limit=limit, cursor=cursor)
        pages.append([t.task_id for t in page.items])
        assert len(page.items) <= limit
        cursor = page.cursor
        if cursor is None:
            return pages


def newest_first(tasks, keep=lambda t: True, owner="acme"):
    chosen = [t for t in tasks if t.owner == owner and keep(t)]
    return [t.task_id for t in sorted(chosen, key=lambda t: (t.created_at, t.task_id), reverse=True)]


def test_the_tasks_are_spread_over_many_shards(tasks):
    assert len({shard_of(t.task_id, OWNER_SHARDS) for t in tasks if t.owner == "acme"}) >= 12
    assert len({shard_of(t.task_id, DUE_SHARDS) for t in tasks if not t.is_terminal}) >= 20


def test_all_of_an_owners_tasks_newest_first_in_small_pages(repo, tasks):
    pages = every_page(repo, limit=7)
    assert all(len(p) == 7 for p in pages[:-1])
    assert list(itertools.chain(*pages)) == newest_first(tasks)
    assert list(itertools.chain(*every_page(repo, owner="other", limit=3))) == newest_first(tasks, owner="other")
    assert repo.list("nobody", statuses=None, name=None, limit=5, cursor=None).items == []


@pytest.mark.parametrize(
    "statuses",
    [
        [TaskStatus.RUNNING],
        [TaskStatus.COMPLETED],
        [TaskStatus.PENDING, TaskStatus.FAILED],
        sorted(ACTIVE_STATUSES),
        [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED],
    ],
)
def test_status_filters_across_shards_and_pages(repo, tasks, statuses):
    got = list(itertools.chain(*every_page(repo, limit=4, statuses=statuses)))
    assert got == newest_first(tasks, lambda t: t.status in statuses)


def test_name_filter_with_and_without_status(repo, tasks):
    got = list(itertools.chain(*every_page(repo, limit=5, name="sleep")))
    assert got == newest_first(tasks, lambda t: t.name == "sleep")
    got = list(
        itertools.chain(*every_page(repo, limit=3, name="sum", statuses=[TaskStatus.RUNNING, TaskStatus.FAILED]))
    )
    assert got == newest_first(tasks, lambda t: t.name == "sum" and t.status in (TaskStatus.RUNNING, TaskStatus.FAILED))


def test_another_owners_cursor_is_refused(repo, tasks):
    page = repo.list("acme", statuses=None, name=None, limit=3, cursor=None)
    with pytest.raises(InvalidCursorError):
        repo.list("other", statuses=None, name=None, limit=3, cursor=page.cursor)
    with pytest.raises(InvalidCursorError):
        repo.list("acme", statuses=None, name=None, limit=3, cursor="bm90LWEtY3Vyc29y")


def test_a_task_ending_between_two_pages_is_neither_repeated_nor_skipped(repo, tasks):
    """The cursor is a created_key: a task keeps it when it moves from by-owner-active to
    by-owner-done, so it stays on the side of the cursor it was on."""
    expected = newest_first(tasks)
    first = repo.list("acme", statuses=None, name=None, limit=10, cursor=None)
    seen = [t.task_id for t in first.items]
    by_id = {t.task_id: t for t in tasks}
    shown_active = next(by_id[i] for i in seen if not by_id[i].is_terminal)
    later_active = [by_id[i] for i in expected[10:] if not by_id[i].is_terminal][:5]
    for task in [shown_active, *later_active]:
        repo.update(task.ref, {"status": TaskStatus.COMPLETED}, Expect(frozenset(ACTIVE_STATUSES)))
    cursor = first.cursor
    while cursor:
        page = repo.list("acme", statuses=None, name=None, limit=10, cursor=cursor)
        seen += [t.task_id for t in page.items]
        cursor = page.cursor
    assert seen == expected
    done = list(itertools.chain(*every_page(repo, limit=6, statuses=[TaskStatus.COMPLETED])))
    assert set(t.task_id for t in later_active) <= set(done) and len(done) == len(set(done))


def test_due_reads_every_shard_most_overdue_first(repo, tasks):
    active = [t for t in tasks if not t.is_terminal]

    def due(before, limit):
        got = repo.due(before, limit)
        assert [t.due_at for t in got] == sorted(t.due_at for t in got)  # most overdue first
        return got

    got = due("2026-11-19T11:00:00.000Z", 500)
    assert sorted(t.task_id for t in got) == sorted(t.task_id for t in active)
    first = due("2026-11-19T11:00:00.000Z", 7)
    assert len(first) == 7 and max(t.due_at for t in first) <= min(t.due_at for t in got[7:])
    before = "2026-11-19T10:00:30.000Z"
    assert sorted(t.task_id for t in due(before, 500)) == sorted(t.task_id for t in active if t.due_at < before)
    ended = repo.due(before, 500)[0]
    repo.update(ended.ref, {"status": TaskStatus.CANCELLED}, Expect(frozenset(ACTIVE_STATUSES)))
    assert ended.task_id not in [t.task_id for t in repo.due(before, 500)]  # left the sparse index


def test_counts_across_shards_and_the_active_statuses_share_one_read(repo, tasks, monkeypatch):
    real, queries = repo._db.query, []

    def counted(**kwargs):
        queries.append(kwargs["IndexName"])
        return real(**kwargs)

    monkeypatch.setattr(repo._db, "query", counted)
    deadline = time.monotonic() + 30
    for status in TaskStatus:
        mine = sum(1 for t in tasks if t.owner == "acme" and t.status is status)
        assert repo.count_by_status("acme", status, since=None, deadline=deadline) == (mine, True)
    # 16 shards of by-owner-active once for the three active statuses, 16 of by-owner-done each
    assert queries.count("by-owner-active") == OWNER_SHARDS
    assert queries.count("by-owner-done") == 3 * OWNER_SHARDS
    assert repo.count_by_status("other", TaskStatus.PENDING, since=None, deadline=deadline)[0] == sum(
        1 for t in tasks if t.owner == "other" and t.status is TaskStatus.PENDING
    )
