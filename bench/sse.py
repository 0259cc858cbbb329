"""Benchmark through a running local stack: status change -> Server-Sent Event latency (see
``live.py`` for the counts)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from .live import LiveCounts
from .report import Row, at_most, command
from .stack import (
    LocalStack,
    parse_iso,
    run_clients,
    sse_follow,
    submit,
    wait_idle,
)
from .stats import summary


def _follow_one(stack: LocalStack, seconds: float, client: httpx.Client, _: int) -> dict[str, Any]:
    accepted = submit(client, {"name": "sleep", "parameters": {"seconds": seconds}})
    if accepted.status != 202 or accepted.task_id is None:
        return {"error": f"submit: HTTP {accepted.status} {accepted.error}"}
    events = sse_follow(client, f"/api/tasks/{accepted.task_id}", timeout=120)
    samples: list[float] = []
    seen: int | None = None
    for i, (arrived, data) in enumerate(events):
        version = int(data["version"])
        if i > 0 and (seen is None or version > seen):
            samples.append(arrived - parse_iso(data["updated_at"]))
        seen = version if seen is None else max(seen, version)
    return {"samples": samples, "statuses": [d["status"] for _, d in events], "events": len(events)}


def bench_sse(stack: LocalStack, counts: LiveCounts, details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("sse", quick)
    with stack.client() as client:
        wait_idle(client, 180)
    started = time.monotonic()
    outcomes = run_clients(
        counts.sse_tasks,
        list(range(counts.sse_tasks)),
        lambda c, i: _follow_one(stack, counts.sse_seconds, c, i),
        lambda: stack.client(timeout=httpx.Timeout(10, read=120)),
    )
    samples = [s for o in outcomes for s in o.get("samples", [])]
    ended = sum(1 for o in outcomes if o.get("statuses") and o["statuses"][-1] == "COMPLETED")
    lat = summary(samples, scale=1000, digits=0)
    details["sse"] = {
        "tasks": counts.sse_tasks,
        "task_seconds": counts.sse_seconds,
        "streams_ending_completed": ended,
        "latency_ms": lat,
        "wall_seconds": round(time.monotonic() - started, 1),
        "errors": [o["error"] for o in outcomes if "error" in o],
        "stream_poll_seconds": "0.2 locally (infra/sam/env.local.json), 0.5 on AWS (template.yaml)",
        "method": "event arrival (time.time()) minus the event's updated_at; the first event of each stream "
        "(state at connect) and heartbeats are left out",
    }
    return [
        Row(
            "sse.p50",
            "4 status -> SSE event",
            f"{counts.sse_tasks} sleep tasks followed at once, p50 (n={lat.get('count')})",
            lat.get("p50"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "sse.p95",
            "4 status -> SSE event",
            "p95",
            lat.get("p95"),
            "ms",
            "<= 1000 ms",
            at_most(lat.get("p95"), 1000),
            cmd,
        ),
        Row(
            "sse.complete",
            "4 status -> SSE event",
            "streams that ended with COMPLETED",
            f"{ended}/{counts.sse_tasks}",
            "",
            "all",
            ended == counts.sse_tasks,
            cmd,
        ),
    ]
