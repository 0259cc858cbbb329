"""Which failures are retried is decided by exception type: the domain's own permanent errors,
and those each task type declares (``permanent_errors``), never by message text."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from taskrunner.domain.errors import PERMANENT_ERRORS, InvalidResultError, ResultTooLargeError
from taskrunner.domain.models import TaskStatus
from taskrunner.domain.ports import TaskContext
from taskrunner.domain.service import Policy, SubmitRequest
from taskrunner.tasks.registry import build_registry

from tests.support.fakes import make_fakes


class Raise(BaseModel):
    kind: str


def _raise(params: Raise, ctx: TaskContext) -> Any:
    if params.kind == "big":
        return "x" * 2000
    raise {"value": ValueError, "key": KeyError, "runtime": RuntimeError}[params.kind]("it went wrong")


def run_once(permanent: tuple[type[BaseException], ...] | None, kind: str) -> Any:
    registry = build_registry()
    extra = {} if permanent is None else {"permanent_errors": permanent}
    registry.register("raiser", _raise, Raise, description="raises", **extra)
    f = make_fakes(policy=Policy(result_max_bytes=1000), registry=registry)
    task = f.services.tasks.submit("default", SubmitRequest(name="raiser", parameters={"kind": kind})).task
    f.services.worker.run(task.ref, remaining_seconds=900, timeout_hint=60)
    return f.repo.tasks[task.task_id]


@pytest.mark.parametrize(
    ("permanent", "kind", "status"),
    [
        (None, "value", TaskStatus.FAILED),  # by default a ValueError is the type's bad input
        (None, "runtime", TaskStatus.RETRYING),
        ((), "value", TaskStatus.RETRYING),  # a type that says ValueError is worth another try
        ((KeyError,), "key", TaskStatus.FAILED),
        ((KeyError,), "value", TaskStatus.RETRYING),
    ],
)
def test_a_task_types_own_permanent_errors_are_not_retried(permanent, kind, status):
    task = run_once(permanent, kind)
    assert task.status is status, task.error
    assert task.attempts == 1


def test_the_domains_result_errors_are_classes_and_permanent():
    task = run_once((), "big")
    assert task.status is TaskStatus.FAILED
    assert task.error.type == ResultTooLargeError.__name__
    assert "the limit is 1000 bytes" in task.error.message
    assert ResultTooLargeError in PERMANENT_ERRORS and InvalidResultError in PERMANENT_ERRORS
