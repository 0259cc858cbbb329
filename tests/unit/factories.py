from __future__ import annotations

import dataclasses
from typing import Any

from taskrunner.domain.models import Task, TaskStatus


def a_task(**overrides: Any) -> Task:
    base = Task(
        task_id="t-1",
        name="sum",
        owner="default",
        queue="default",
        status=TaskStatus.PENDING,
        parameters={"numbers": [1, 2]},
        created_at="2026-11-19T09:00:00.000Z",
        updated_at="2026-11-19T09:00:00.000Z",
        max_attempts=3,
        timeout_seconds=60,
    )
    return dataclasses.replace(base, **overrides)
