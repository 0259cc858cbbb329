"""Benchmark through a running local stack: throughput of no-op tasks with the CPU per task of
every process (see ``live.py`` for the counts and the warm-up)."""

from __future__ import annotations

import time
from typing import Any

from .live import LiveCounts, sum_body, warm
from .report import Row, at_least, at_most, command
from .stack import (
    CPU_GROUPS,
    CpuSnapshot,
    LocalStack,
    collect,
    own_cpu,
    parse_iso,
    run_clients,
    submit,
    wait_idle,
)
from .stats import summary


def bench_throughput(stack: LocalStack, counts: LiveCounts, details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("throughput", quick)
    n = counts.throughput_tasks
    with stack.client() as client:
        wait_idle(client, 180)
    warm(stack, counts.throughput_clients)
    with stack.client() as client:
        wait_idle(client, 120)
    before = CpuSnapshot.take(stack.proc.pid)
    bench_cpu = own_cpu()
    t0 = time.time()
    started = time.monotonic()
    results = run_clients(counts.throughput_clients, list(range(n)), lambda c, i: submit(c, sum_body(i)), stack.client)
    submitted_in = time.monotonic() - started
    accepted = {r.task_id for r in results if r.status == 202 and r.task_id}
    with stack.client() as client:
        wait_idle(client, max(120.0, n / 5))
        after = CpuSnapshot.take(stack.proc.pid)
        bench_cpu = own_cpu() - bench_cpu
        window = after.at - before.at
        completed = {t["task_id"]: t for t in collect(client, "COMPLETED", accepted) if t["task_id"] in accepted}
        missing = accepted - set(completed)
        failed = [t for t in collect(client, "FAILED", missing) if t["task_id"] in missing] if missing else []
    done_at = [parse_iso(t["completed_at"]) for t in completed.values()]
    latencies = [parse_iso(t["completed_at"]) - parse_iso(t["created_at"]) for t in completed.values()]
    last = max(done_at) if done_at else float("nan")
    throughput = len(completed) / (last - t0) if done_at else float("nan")
    lat = summary(latencies, scale=1000, digits=0)
    cpu = after.since(before)
    per_task = {k: round(v * 1000 / max(1, len(completed)), 2) for k, v in cpu.items()}
    project = per_task["API function"] + per_task["worker function"]
    details["throughput"] = {
        "tasks": n,
        "clients": counts.throughput_clients,
        "accepted": len(accepted),
        "completed": len(completed),
        "failed": len(failed),
        "not_completed": len(missing) - len(failed),
        "submit_seconds": round(submitted_in, 2),
        "submit_rate": round(n / submitted_in, 1),
        "first_submit_to_last_completed_seconds": round(last - t0, 2),
        "throughput_tasks_per_second": round(throughput, 1),
        "completion_latency_ms": lat,
        "submit_latency_ms": summary([r.seconds for r in results if r.status == 202], scale=1000),
        "attempts_other_than_1": sum(1 for t in completed.values() if t["attempts"] != 1),
    }
    details["cpu"] = {
        "window_seconds": round(window, 2),
        "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_ms_per_task": per_task,
        "processes": after.processes(),
        "bench_client_cpu_seconds": round(bench_cpu, 2),
        "note": "CPU of the runner's processes between just before the first submit and the moment no task was active",
    }
    rows = [
        Row(
            "throughput.rate",
            "2 throughput",
            f"{n} no-op tasks, {counts.throughput_clients} clients: first submit -> last COMPLETED",
            round(throughput, 1),
            "tasks/s",
            ">= 100 tasks/s",
            at_least(throughput, 100),
            cmd,
        ),
        Row(
            "throughput.submit_rate",
            "2 throughput",
            "submit rate (all 202 received)",
            details["throughput"]["submit_rate"],
            "req/s",
            "",
            None,
            cmd,
        ),
        Row(
            "throughput.latency.p50",
            "2 throughput",
            "per-task created_at -> completed_at, p50",
            lat.get("p50"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "throughput.latency.p95",
            "2 throughput",
            "per-task created_at -> completed_at, p95",
            lat.get("p95"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "throughput.lost",
            "2 throughput",
            "accepted but not COMPLETED",
            len(accepted) - len(completed),
            "",
            "0",
            len(accepted) == len(completed) == n,
            cmd,
        ),
    ]
    ccmd = command("cpu", quick)
    rows.append(
        Row(
            "cpu.project",
            "3 CPU per task",
            "API + worker function processes",
            round(project, 2),
            "ms/task",
            "<= 5 ms",
            at_most(project, 5),
            ccmd,
        )
    )
    for group in CPU_GROUPS:
        rows.append(
            Row(f"cpu.{group.split()[0].lower()}", "3 CPU per task", group, per_task[group], "ms/task", "", None, ccmd)
        )
    rows.append(
        Row(
            "cpu.bench",
            "3 CPU per task",
            "the benchmark's own HTTP clients (for scale)",
            round(bench_cpu * 1000 / max(1, len(completed)), 2),
            "ms/task",
            "",
            None,
            ccmd,
        )
    )
    return rows
