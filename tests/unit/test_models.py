import pytest
from taskrunner.domain.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Expect, TaskStatus, can_transition

from tests.unit.factories import a_task


def test_terminal_statuses_allow_no_transition():
    for status in TERMINAL_STATUSES:
        assert not any(can_transition(status, other) for other in TaskStatus)


def test_allowed_paths():
    assert can_transition(TaskStatus.PENDING, TaskStatus.RUNNING)
    assert can_transition(TaskStatus.RUNNING, TaskStatus.RETRYING)
    assert can_transition(TaskStatus.RETRYING, TaskStatus.RUNNING)
    assert not can_transition(TaskStatus.PENDING, TaskStatus.COMPLETED)
    assert not can_transition(TaskStatus.RETRYING, TaskStatus.COMPLETED)
    assert ACTIVE_STATUSES.isdisjoint(TERMINAL_STATUSES)


def test_expect_checks_status_attempts_and_expired_lease():
    task = a_task(status=TaskStatus.RUNNING, attempts=2, lease_expires_at="2026-11-19T09:00:10.000Z")
    assert Expect(frozenset({TaskStatus.RUNNING}), attempts=2).holds_for(task)
    assert not Expect(frozenset({TaskStatus.RUNNING}), attempts=1).holds_for(task)
    claim = frozenset({TaskStatus.PENDING, TaskStatus.RETRYING})
    assert not Expect(claim, lease_expired_before="2026-11-19T09:00:05.000Z").holds_for(task)
    assert Expect(claim, lease_expired_before="2026-11-19T09:00:11.000Z").holds_for(task)


def test_a_moving_write_is_conditioned_on_the_transition_table():
    assert Expect.into(TaskStatus.CANCELLED).statuses == ACTIVE_STATUSES
    assert Expect.into(TaskStatus.COMPLETED).statuses == frozenset({TaskStatus.RUNNING})
    assert Expect.into(TaskStatus.RETRYING, attempts=2).attempts == 2
    narrowed = Expect.into(TaskStatus.RUNNING, only=frozenset({TaskStatus.PENDING}), lease_expired_before="x")
    assert narrowed.statuses == frozenset({TaskStatus.PENDING}) and narrowed.lease_expired_before == "x"
    with pytest.raises(ValueError, match="from PENDING to COMPLETED"):
        Expect.into(TaskStatus.COMPLETED, only=frozenset({TaskStatus.PENDING, TaskStatus.RUNNING}))
    with pytest.raises(ValueError, match="from nothing"):
        Expect.into(TaskStatus.PENDING)  # nothing moves a task back to PENDING
    for target in TaskStatus:
        for source in TaskStatus:
            if can_transition(source, target):
                assert source in Expect.into(target).statuses


def test_public_shape_has_documented_fields():
    public = a_task().to_public()
    for field in (
        "task_id",
        "name",
        "status",
        "parameters",
        "result",
        "error",
        "progress",
        "attempts",
        "max_attempts",
        "created_at",
        "started_at",
        "updated_at",
        "completed_at",
        "callback",
    ):
        assert field in public
