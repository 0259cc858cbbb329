"""The peer comparison: the figures a Celery+Redis deployment is measured by, on a fresh
local stack as ``make run`` starts it (defaults, throttle on), no-op ``sum`` tasks:

- submit latency of 1 client while 16 other clients keep the workers busy (p50/p99);
- submit capacity of 16 clients (accepted per second);
- 500 tasks from 16 clients, first submit -> last COMPLETED (tasks/s) and each task's
  created_at -> completed_at (p50);
- CPU per task of each process class over that run (/proc stat, bench/stack.py's classes);
- resident memory of every process after the runs, and the embedded endpoint's growth;
- idle CPU of each class over 20 s once the stack has settled, in % of one core.

Medians of ``rounds`` rounds for everything measured per round."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any

from .live import sum_body, warm
from .report import Row, command
from .stack import CPU_GROUPS, CpuSnapshot, LocalStack, Submitted, collect, parse_iso, run_clients, submit, wait_idle
from .stats import percentile

CLIENTS = 16
TASKS = 500
IDLE_SECONDS = 20.0
SETTLE_SECONDS = 5.0


def rss_by_group(root: int) -> dict[str, float]:
    """Resident memory of the stack's processes per class, MiB."""
    snap = CpuSnapshot.take(root)
    out = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (group, _) in snap.per_pid.items():
        out[group] += snap.rss_bytes[pid] / 2**20
    return {k: round(v, 1) for k, v in out.items()}


def moto_rss(root: int) -> float:
    snap = CpuSnapshot.take(root)
    return sum(snap.rss_bytes[pid] / 2**20 for pid, (group, _) in snap.per_pid.items() if group.startswith("moto"))


def idle_cpu(stack: LocalStack, seconds: float = IDLE_SECONDS) -> dict[str, float]:
    """% of one core per process class over ``seconds`` with nothing to do."""
    before = CpuSnapshot.take(stack.proc.pid)
    time.sleep(seconds)
    after = CpuSnapshot.take(stack.proc.pid)
    window = after.at - before.at
    return {k: round(v * 100 / window, 2) for k, v in after.since(before).items()}


def busy_latency(stack: LocalStack, seconds: float) -> list[float]:
    """Submit latencies of one client, for ``seconds``, while ``CLIENTS`` others submit as
    fast as they can (so the workers stay busy)."""
    stop = threading.Event()

    def background(n: int) -> None:
        with stack.client() as client:
            i = 0
            while not stop.is_set():
                submit(client, sum_body(n * 100_000 + i))
                i += 1

    threads = [threading.Thread(target=background, args=(n,), daemon=True) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    out: list[Submitted] = []
    try:
        with stack.client() as client:
            time.sleep(1.0)  # the workers are busy before the first timed request
            ends = time.monotonic() + seconds
            while time.monotonic() < ends:
                out.append(submit(client, sum_body(len(out))))
    finally:
        stop.set()
        for t in threads:
            t.join()
    return [s.seconds * 1000 for s in out if s.status == 202]


def throughput_round(stack: LocalStack, tasks: int) -> dict[str, Any]:
    root = stack.proc.pid
    before = CpuSnapshot.take(root)
    t0 = time.time()
    started = time.monotonic()
    results = run_clients(CLIENTS, list(range(tasks)), lambda c, i: submit(c, sum_body(i)), stack.client)
    submit_seconds = time.monotonic() - started
    accepted = {r.task_id for r in results if r.status == 202 and r.task_id}
    settle(stack)
    after = CpuSnapshot.take(root)
    with stack.client() as client:
        done = [t for t in collect(client, "COMPLETED", accepted) if t["task_id"] in accepted]
    last = max((parse_iso(t["completed_at"]) for t in done), default=float("nan"))
    latencies = [parse_iso(t["completed_at"]) - parse_iso(t["created_at"]) for t in done]
    cpu = after.since(before)
    return {
        "accepted": len(accepted),
        "completed": len(done),
        "submit_rate": len(accepted) / submit_seconds,
        "tasks_per_second": len(done) / (last - t0) if done else float("nan"),
        "completion_p50_s": percentile(latencies, 50),
        "cpu_ms_per_task": {k: v * 1000 / max(1, len(done)) for k, v in cpu.items()},
    }


def settle(stack: LocalStack, timeout: float = 300) -> None:
    """wait_idle (its reads wait out the 503/429 a saturated API may answer meanwhile)."""
    with stack.client() as client:
        wait_idle(client, timeout)


def _brief(run: dict[str, Any]) -> str:
    cpu = sum(run["cpu_ms_per_task"].values())
    return (
        f"capacity {run['submit_rate']:.1f} req/s, {run['tasks_per_second']:.1f} tasks/s, "
        f"completion p50 {run['completion_p50_s']:.2f} s, CPU {cpu:.1f} ms/task"
    )


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def bench_peer(stack: LocalStack, details: dict[str, Any], quick: bool, rounds: int = 3) -> list[Row]:
    cmd = command("peer", quick)
    root = stack.proc.pid
    tasks = 100 if quick else TASKS
    busy_seconds = 5.0 if quick else 10.0
    warm(stack, CLIENTS)
    settle(stack)
    time.sleep(SETTLE_SECONDS)
    idle = idle_cpu(stack, 8.0 if quick else IDLE_SECONDS)
    moto_start = moto_rss(root)
    lat: list[dict[str, float]] = []
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        ms = busy_latency(stack, busy_seconds)
        lat.append({"p50": percentile(ms, 50), "p99": percentile(ms, 99), "count": len(ms)})
        settle(stack)
        runs.append(throughput_round(stack, tasks))
        print(f"  peer round {len(runs)}: busy submit {lat[-1]}, {_brief(runs[-1])}", file=sys.stderr, flush=True)
    rss = rss_by_group(root)
    moto_end = moto_rss(root)
    per_task = {g: _median([r["cpu_ms_per_task"][g] for r in runs]) for g in CPU_GROUPS}
    figures = {
        "submit_busy_p50_ms": _median([x["p50"] for x in lat]),
        "submit_busy_p99_ms": _median([x["p99"] for x in lat]),
        "submit_capacity_rps": _median([r["submit_rate"] for r in runs]),
        "tasks_per_second": _median([r["tasks_per_second"] for r in runs]),
        "completion_p50_s": _median([r["completion_p50_s"] for r in runs]),
        "cpu_ms_per_task": per_task,
        "cpu_ms_per_task_total": round(sum(per_task.values()), 2),
        "rss_mib": rss,
        "rss_mib_total": round(sum(rss.values()), 1),
        "moto_rss_mib": {"after_warm_up": round(moto_start, 1), "after_runs": round(moto_end, 1)},
        "idle_cpu_percent": idle,
        "idle_cpu_percent_total": round(sum(idle.values()), 2),
    }
    details["peer"] = {"rounds": rounds, "tasks": tasks, "clients": CLIENTS, "figures": figures, "runs": runs}
    details["peer"]["busy_latency"] = lat
    section = "8 peer comparison"

    def row(key: str, label: str, value: Any, unit: str = "") -> Row:
        return Row(f"peer.{key}", section, label, value, unit, "", None, cmd)

    cpu_parts = ", ".join(f"{g.split()[0]} {v:.1f}" for g, v in per_task.items() if v)
    idle_parts = ", ".join(f"{g.split()[0]} {v:.2f}" for g, v in idle.items() if v)
    return [
        row(
            "busy_latency",
            f"submit, 1 client while {CLIENTS} clients keep workers busy, p50 / p99 (median of {rounds})",
            f"{figures['submit_busy_p50_ms']:.1f} / {figures['submit_busy_p99_ms']:.1f} ms",
        ),
        row("capacity", f"submit capacity, {CLIENTS} clients", figures["submit_capacity_rps"], "req/s"),
        row(
            "throughput",
            f"{tasks} no-op tasks, {CLIENTS} clients, submit -> COMPLETED",
            figures["tasks_per_second"],
            "tasks/s",
        ),
        row("completion_p50", "… completion latency p50", figures["completion_p50_s"], "s"),
        row("cpu", f"CPU per task, all processes ({cpu_parts})", figures["cpu_ms_per_task_total"], "ms/task"),
        row("rss", "resident memory of every process after the runs", figures["rss_mib_total"], "MiB"),
        row(
            "moto_rss",
            "… of which the embedded endpoint (after warm-up -> after the runs)",
            f"{moto_start:.0f} -> {moto_end:.0f} MiB",
        ),
        row("idle", f"CPU while idle, % of one core ({idle_parts})", figures["idle_cpu_percent_total"], "%"),
    ]
