"""The domain's use cases, one module each; their names are importable from here too.

- submission.py: TaskService (the API's: submit, retry, get, list, cancel)
- execution.py: WorkerService (the worker's: claim, run a segment, record the outcome), with
  run_context.py (the TaskContext a running task gets)
- callbacks.py: CallbackService (the notifier's)
- reconciler.py: Reconciler (the schedule's)
- policy.py: Policy, the clock and the backoff rule
"""

from __future__ import annotations

from .attempts import attempt_entry, attempt_history
from .callbacks import CallbackService, DeliveryOutcome
from .errors import NonRetryableError
from .execution import Continuation, RunOutcome, WorkerService
from .models import new_message, terminal_changes
from .policy import Policy, SystemClock, backoff_seconds
from .reconciler import Reconciler
from .run_context import RunContext, segment_running
from .submission import SubmitRequest, SubmitResult, TaskService, request_hash

__all__ = [
    "CallbackService",
    "Continuation",
    "DeliveryOutcome",
    "NonRetryableError",
    "Policy",
    "Reconciler",
    "RunContext",
    "RunOutcome",
    "SubmitRequest",
    "SubmitResult",
    "SystemClock",
    "TaskService",
    "WorkerService",
    "attempt_entry",
    "attempt_history",
    "backoff_seconds",
    "new_message",
    "request_hash",
    "segment_running",
    "terminal_changes",
]
