"""Load run for reliability: many `message` tasks with unique content from concurrent clients
against a fresh local stack; every accepted task must end COMPLETED exactly once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from .report import Row, command
from .stack import LocalStack, collect, run_clients, submit, wait_idle
from .stats import summary


def bench_load(
    stack: LocalStack, tasks: int, clients: int, details: dict[str, Any], quick: bool, *, timeout: float = 300
) -> list[Row]:
    cmd = command("load", quick)
    run = uuid.uuid4().hex[:8]
    contents = [f"load-{run}-{i:05d}" for i in range(tasks)]
    deadline = time.monotonic() + timeout
    t0 = time.time()
    started = time.monotonic()
    results = run_clients(
        clients,
        contents,
        lambda c, content: submit(c, {"name": "message", "parameters": {"content": content}}, deadline=deadline),
        stack.client,
    )
    submit_seconds = time.monotonic() - started
    accepted = {
        r.task_id: content for r, content in zip(results, contents, strict=True) if r.status == 202 and r.task_id
    }
    rejected = Counter(str(r.status) for r in results if r.status != 202)
    throttled = sum(r.throttled for r in results)
    with stack.client() as client:
        try:
            wait_idle(client, max(30.0, deadline - time.monotonic()), interval=1.0)
            drained = True
        except TimeoutError:
            drained = False
        wall = time.monotonic() - started
        terminal: dict[str, dict[str, Any]] = {}
        for status in ("COMPLETED", "FAILED", "CANCELLED"):
            wanted = set(accepted) - set(terminal)
            if wanted:
                terminal.update({t["task_id"]: t for t in collect(client, status, wanted) if t["task_id"] in accepted})
        ours = set(contents)
        stored = Counter(
            m["content"]
            for m in collect(client, "", None, path="/api/messages", key="messages")
            if m["content"] in ours
        )
    completed = [t for t in terminal.values() if t["status"] == "COMPLETED"]
    lost = sorted(set(accepted) - {t["task_id"] for t in completed})
    reran = [t["task_id"] for t in completed if t["attempts"] != 1]
    duplicated = sorted(c for c, n in stored.items() if n > 1)
    missing_messages = sorted(accepted[t["task_id"]] for t in completed if stored.get(accepted[t["task_id"]], 0) == 0)
    last_done = max((_epoch(t["completed_at"]) for t in completed), default=float("nan"))
    throughput = len(completed) / (last_done - t0) if completed else float("nan")
    latencies = [_epoch(t["completed_at"]) - _epoch(t["created_at"]) for t in completed]
    details["load"] = {
        "tasks": tasks,
        "clients": clients,
        "submitted": len(results),
        "accepted": len(accepted),
        "rejected_by_status": dict(rejected),
        "throttled_then_retried": throttled,
        "completed": len(completed),
        "terminal_not_completed": {
            s: sum(1 for t in terminal.values() if t["status"] == s) for s in ("FAILED", "CANCELLED")
        },
        "lost": len(lost),
        "lost_task_ids": lost[:20],
        "attempts_other_than_1": len(reran),
        "messages_stored": sum(stored.values()),
        "messages_duplicated": len(duplicated),
        "messages_missing": len(missing_messages),
        "drained": drained,
        "submit_seconds": round(submit_seconds, 1),
        "wall_seconds": round(wall, 1),
        "throughput_tasks_per_second": round(throughput, 1),
        "completion_latency_ms": summary(latencies, scale=1000, digits=0),
        "submit_latency_ms": summary([r.seconds for r in results if r.status == 202], scale=1000),
    }
    d = details["load"]
    label = f"{tasks} message tasks, {clients} clients, fresh stack"
    return [
        Row("load.submitted", "8 load run", f"{label}: submitted", d["submitted"], "", "", None, cmd),
        Row(
            "load.accepted",
            "8 load run",
            "accepted (202)",
            d["accepted"],
            "",
            f"= {tasks}",
            d["accepted"] == tasks,
            cmd,
            f"{throttled} throttled responses retried" if throttled else "",
        ),
        Row(
            "load.completed",
            "8 load run",
            "accepted and COMPLETED",
            d["completed"],
            "",
            "= accepted",
            d["completed"] == d["accepted"],
            cmd,
        ),
        Row("load.lost", "8 load run", "lost (accepted, never COMPLETED)", d["lost"], "", "0", d["lost"] == 0, cmd),
        Row(
            "load.duplicated",
            "8 load run",
            "executed twice (attempts != 1, or message stored twice)",
            d["attempts_other_than_1"] + d["messages_duplicated"],
            "",
            "0",
            d["attempts_other_than_1"] + d["messages_duplicated"] == 0,
            cmd,
            f"{d['messages_stored']} messages stored, {d['messages_missing']} missing",
        ),
        Row(
            "load.wall", "8 load run", "wall time, first submit -> all terminal", d["wall_seconds"], "s", "", None, cmd
        ),
        Row(
            "load.rate",
            "8 load run",
            "throughput, first submit -> last COMPLETED",
            d["throughput_tasks_per_second"],
            "tasks/s",
            "",
            None,
            cmd,
        ),
    ]


def _epoch(value: str) -> float:
    from .stack import parse_iso

    return parse_iso(value)
