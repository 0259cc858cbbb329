"""How a task's start and end are told: its events and metrics, and once it has ended its
callback queued. Shared by the worker's use case (execution.py) and the dead-letter consumer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .models import CallbackStatus, Task, TaskStatus, parse_iso
from .ports import TaskQueue, Telemetry


def report_start(telemetry: Telemetry, task: Task, now: datetime) -> None:
    """A claimed attempt's event and metrics (with how long the task waited, first attempt only)."""
    waited_ms = max(0.0, (now - parse_iso(task.created_at)).total_seconds() * 1000)
    telemetry.task_event("started", task, attempt=task.attempts, segment=task.segments, queue_wait_ms=round(waited_ms))
    telemetry.metric("TasksStarted", 1, task_type=task.name)
    if task.attempts == 1:
        telemetry.metric("QueueWait", waited_ms, unit="Milliseconds", task_type=task.name)


def report_segment_start(telemetry: Telemetry, task: Task, now: datetime, handed_over_at: str | None) -> None:
    """A continued segment's event and metrics (with the gap since its hand-over, when known)."""
    fields: dict[str, Any] = {"attempt": task.attempts, "segment": task.segments}
    if handed_over_at:
        gap = (now - parse_iso(handed_over_at)).total_seconds() * 1000
        fields["hand_over_gap_ms"] = round(gap)
        telemetry.metric("HandOverGap", gap, unit="Milliseconds", task_type=task.name)
    telemetry.task_event("segment_started", task, **fields)
    telemetry.metric("SegmentsStarted", 1, task_type=task.name)


ENDED_METRICS = {
    TaskStatus.COMPLETED: "TasksCompleted",
    TaskStatus.FAILED: "TasksFailed",
    TaskStatus.CANCELLED: "TasksCancelled",
}


def report_end(telemetry: Telemetry, task: Task) -> None:
    """The ended task's event (with its error and run time) and metrics."""
    fields: dict[str, Any] = {"attempts": task.attempts, "segments": task.segments}
    if task.error is not None:
        fields.update(error_type=task.error.type, error=task.error.message)
    if task.started_at and task.completed_at:
        duration = (parse_iso(task.completed_at) - parse_iso(task.started_at)).total_seconds() * 1000
        fields["duration_ms"] = round(duration)
        telemetry.metric("RunDuration", duration, unit="Milliseconds", task_type=task.name)
    telemetry.task_event(task.status.value.lower(), task, **fields)
    telemetry.metric(ENDED_METRICS[task.status], 1, task_type=task.name)


def ensure_callback(queue: TaskQueue, task: Task) -> None:
    """An ended task whose callback is still to be sent: its callback message queued."""
    if task.callback is not None and task.callback.status in (CallbackStatus.PENDING,):
        queue.enqueue_callback(task.task_id)
