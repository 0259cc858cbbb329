"""The end a dead-lettered message gives its task (the dead-letter consumer's use case)."""

from __future__ import annotations

from .attempts import AttemptOutcome, attempt_entry, attempt_history
from .errors import ConditionFailedError
from .models import Expect, Task, TaskError, TaskStatus, iso, terminal_changes
from .policy import Policy
from .ports import Clock, TaskQueue, TaskRepository, Telemetry
from .reporting import ensure_callback, report_end


def fail_from_dead_letter(
    repo: TaskRepository,
    queue: TaskQueue,
    telemetry: Telemetry,
    clock: Clock,
    policy: Policy,
    task_id: str,
    reason: str,
) -> Task | None:
    """A message reached the DLQ: the task ends FAILED with the reason (unless already terminal)."""
    for _ in range(3):
        task = repo.get(task_id)
        if task is None or task.is_terminal:
            return task
        now = iso(clock.now())
        error = TaskError("DeadLetterError", reason)
        changes = terminal_changes(TaskStatus.FAILED, now, error=error)
        if task.status is TaskStatus.RUNNING and task.attempts > 0:
            # the running attempt ends here: recorded as such (under the claim it ran on)
            entry = attempt_entry(task, AttemptOutcome.FAILED, now, error=error)
            changes["attempt_history"] = attempt_history(task, policy.max_attempts_limit, entry)
        try:
            final = repo.update(task.ref, changes, Expect.into(TaskStatus.FAILED, attempts=task.attempts))
            break
        except ConditionFailedError:
            continue
    else:
        return repo.get(task_id)
    report_end(telemetry, final)
    ensure_callback(queue, final)
    return final
