"""The domain reads time only through its injected clock, so a fake clock runs a task's
sleeps, timeouts and hand-overs in virtual time."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from taskrunner.domain.models import TaskStatus
from taskrunner.domain.ports import TaskContext
from taskrunner.domain.run_context import RunContext
from taskrunner.domain.service import Policy, SubmitRequest, SystemClock
from taskrunner.tasks.registry import build_registry

from tests.support.fakes import make_fakes

DOMAIN = Path(__file__).resolve().parents[2] / "functions" / "taskrunner" / "domain"

# the readings of the machine's own clocks (and its pauses) a domain module must not make
TIME_FUNCTIONS = {
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "process_time",
    "sleep",
}
DATETIME_FUNCTIONS = {"now", "utcnow", "today"}

# where the domain may read the machine's clock, and why
ALLOWED = {
    ("policy.py", "SystemClock"): "the real clock: what the composition root injects",
    ("models.py", "utcnow"): "the wall clock SystemClock.now reads",
    # each takes its clock as a callable (tests pass their own); the default is the real one
    ("auth.py", "Authenticator"): "the key cache's default clock",
    ("auth.py", "RevocationCheck"): "the revocation cache's default clock",
    ("auth.py", "StreamTokens"): "the stream tokens' default clock",
    ("auth.py", "RateLimiter"): "the rate limiter's default clock",
}


def _clock_readings(source: str) -> list[tuple[str, int, str]]:
    """(enclosing class or function at the top of the module, line, what) of every reading."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, owner: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = owner
            if not owner and isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.ImportFrom) and child.module == "time":
                found.append((inner, child.lineno, "from time import ..."))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "time" and alias.asname:
                        found.append((inner, child.lineno, f"import time as {alias.asname}"))
            if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
                name, attr = child.value.id, child.attr
                if (name == "time" and attr in TIME_FUNCTIONS) or (
                    name in {"datetime", "date"} and attr in DATETIME_FUNCTIONS
                ):
                    found.append((inner, child.lineno, f"{name}.{attr}"))
            visit(child, inner)

    visit(ast.parse(source), "")
    return found


def test_the_domain_reads_no_clock_of_its_own():
    modules = sorted(DOMAIN.glob("*.py"))
    assert {"run_context.py", "execution.py", "policy.py"} <= {m.name for m in modules}
    stray = [
        f"{module.name}:{line} {what} (in {owner or 'the module'})"
        for module in modules
        for owner, line, what in _clock_readings(module.read_text())
        if (module.name, owner) not in ALLOWED
    ]
    assert not stray, "read the injected Clock instead: " + "; ".join(stray)


def test_the_check_finds_a_reading_and_where_it_is():
    source = "import time\nclass C:\n    def f(self):\n        return time.monotonic()\nx = datetime.now()\n"
    assert _clock_readings(source) == [("C", 4, "time.monotonic"), ("", 5, "datetime.now")]


class Seconds(BaseModel):
    seconds: float


def _sleeps(params: Seconds, ctx: TaskContext) -> str:
    ctx.sleep(params.seconds)
    return "slept"


def test_a_long_sleep_under_a_short_timeout_fails_with_the_timeout_in_no_real_time():
    registry = build_registry()
    registry.register("sleeper", _sleeps, Seconds, description="sleeps", timeout_seconds=1)
    f = make_fakes(registry=registry)
    task = f.services.tasks.submit(
        "default", SubmitRequest(name="sleeper", parameters={"seconds": 60}, max_attempts=1)
    ).task
    started_real, started = time.monotonic(), f.clock.monotonic()
    f.services.worker.run(task.ref, remaining_seconds=900, timeout_hint=task.timeout_seconds)
    real = time.monotonic() - started_real
    final = f.repo.tasks[task.task_id]
    assert final.status is TaskStatus.FAILED and final.error is not None
    assert final.error.type == "TaskTimeoutError"
    assert real < 0.5, f"took {real:.2f} s of real time"
    assert 1.0 <= f.clock.monotonic() - started < 1.5, "the timeout, not the sleep, ended it (virtual time)"


def _a_context(clock: Any) -> RunContext:
    f = make_fakes()
    task = f.services.tasks.submit("default", SubmitRequest(name="sleep", parameters={"seconds": 1})).task
    return RunContext(
        task,
        f.repo,
        clock,
        segment_seconds=600,
        runtime_limited=False,
        policy=Policy(),
        messages=f.messages,
        http=f.http,
    )


def test_a_sleeping_task_wakes_at_once_when_the_worker_gives_up_on_it():
    ctx = _a_context(SystemClock())
    ended: list[BaseException] = []

    def sleeper() -> None:
        try:
            ctx.sleep(60)
        except BaseException as exc:
            ended.append(exc)

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    time.sleep(0.05)
    ctx.abandon()
    thread.join(1)
    assert not thread.is_alive()
    assert [type(e).__name__ for e in ended] == ["TaskCancelledError"]


def test_the_system_clock_waits_for_real_and_ends_early_on_its_event():
    clock = SystemClock()
    event = threading.Event()
    before = clock.monotonic()
    assert clock.wait(event, 0.05) is False
    assert clock.monotonic() - before >= 0.05
    event.set()
    assert clock.wait(event, 60) is True
