"""Benchmarks through a running local stack: submit latency, throughput with CPU per task,
and status change -> Server-Sent Event latency."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import httpx

from .report import Row, at_least, at_most, command
from .stack import (
    CPU_GROUPS,
    CpuSnapshot,
    LocalStack,
    collect,
    own_cpu,
    parse_iso,
    run_clients,
    sse_follow,
    submit,
    wait_idle,
)
from .stats import percentile, summary


@dataclasses.dataclass(frozen=True)
class LiveCounts:
    submit_single: int = 300
    submit_concurrent: int = 960
    concurrent_clients: int = 16
    throughput_tasks: int = 1000
    throughput_clients: int = 32
    sse_tasks: int = 16
    sse_seconds: float = 3.0

    @classmethod
    def quick(cls) -> LiveCounts:
        return cls(
            submit_single=60,
            submit_concurrent=160,
            throughput_tasks=200,
            throughput_clients=16,
            sse_tasks=4,
            sse_seconds=2.0,
        )


def sum_body(i: int) -> dict[str, Any]:
    return {"name": "sum", "parameters": {"a": i, "b": 1}}


def _warm(stack: LocalStack, clients: int) -> None:
    """One request per client at once, so every API environment exists before timing."""
    run_clients(clients, list(range(clients)), lambda c, i: submit(c, sum_body(i)), stack.client)


def bench_submit(stack: LocalStack, counts: LiveCounts, details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("submit", quick)
    _warm(stack, counts.concurrent_clients)
    with stack.client() as client:
        wait_idle(client, 120)
        submit(client, sum_body(0))  # the connection is open and warm before the first timed request
        single = [submit(client, sum_body(i)) for i in range(counts.submit_single)]
        wait_idle(client, 120)
    bad = [s for s in single if s.status != 202]
    one = summary([s.seconds for s in single if s.status == 202], scale=1000)
    parts = _parts(stack, max(30, counts.submit_single // 3))

    started = time.monotonic()
    jobs = list(range(counts.submit_concurrent))
    many = run_clients(counts.concurrent_clients, jobs, lambda c, i: submit(c, sum_body(i)), stack.client)
    elapsed = time.monotonic() - started
    with stack.client() as client:
        wait_idle(client, 180)
    bad += [s for s in many if s.status != 202]
    conc = summary([s.seconds for s in many if s.status == 202], scale=1000)
    details["submit"] = {
        "one_client_ms": one,
        "concurrent_ms": conc,
        "concurrent_clients": counts.concurrent_clients,
        "concurrent_requests_per_second": round(len(many) / elapsed, 1),
        "non_202": len(bad),
        "throttled_retries": sum(s.throttled for s in [*single, *many]),
        "errors": [s.error for s in bad[:5]],
        "parts_ms": parts,
    }
    n16 = counts.concurrent_clients
    rows = [
        Row(
            "submit.1.p50",
            "1 submit latency",
            f"POST /api/tasks, 1 client, p50 (n={one.get('count')})",
            one.get("p50"),
            "ms",
            "<= 15 ms",
            at_most(one.get("p50"), 15),
            cmd,
        ),
        Row("submit.1.p95", "1 submit latency", "1 client, p95", one.get("p95"), "ms", "", None, cmd),
        Row(
            "submit.1.p99",
            "1 submit latency",
            "1 client, p99",
            one.get("p99"),
            "ms",
            "<= 50 ms",
            at_most(one.get("p99"), 50),
            cmd,
        ),
        Row(
            "submit.parts.idle",
            "1 submit latency",
            "the same submit with the worker idle (delay_seconds=900, cancelled after), 1 client, p50",
            parts["worker_idle"].get("p50"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "submit.parts.http",
            "1 submit latency",
            "the same HTTP path without AWS calls (GET /api/callback-secret), 1 client, p50",
            parts["no_aws_call"].get("p50"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "submit.parts.aws",
            "1 submit latency",
            "the submit's two AWS calls alone (PutItem + SendMessage to the local moto server), p50 each",
            f"{parts['put_item'].get('p50')} + {parts['send_message'].get('p50')} ms",
            "",
            "",
            None,
            cmd,
        ),
        Row(
            "submit.parts.client_cpu",
            "1 submit latency",
            "CPU of one AWS call in a boto3 client (botocore: build, sign, send, parse; this machine), mean",
            parts["client_cpu_per_call_ms"].get("mean"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "submit.16.p50",
            "1 submit latency",
            f"{n16} concurrent clients, p50 (n={conc.get('count')})",
            conc.get("p50"),
            "ms",
            "",
            None,
            cmd,
        ),
        Row(
            "submit.16.p95", "1 submit latency", f"{n16} concurrent clients, p95", conc.get("p95"), "ms", "", None, cmd
        ),
        Row(
            "submit.16.p99", "1 submit latency", f"{n16} concurrent clients, p99", conc.get("p99"), "ms", "", None, cmd
        ),
        Row(
            "submit.16.rate",
            "1 submit latency",
            f"{n16} concurrent clients, accepted per second",
            details["submit"]["concurrent_requests_per_second"],
            "req/s",
            "",
            None,
            cmd,
        ),
    ]
    if bad:
        rows.append(Row("submit.errors", "1 submit latency", "responses other than 202", len(bad), "", "0", False, cmd))
    return rows


def _parts(stack: LocalStack, n: int) -> dict[str, dict[str, float | int]]:
    """Where a submit's time goes: the same HTTP path through the front and the API function
    without any AWS call, and the AWS calls alone from a boto3 client of this process."""
    import boto3
    from botocore.config import Config

    with stack.client() as client:
        plain = []
        for i in range(n + 1):
            started = time.perf_counter()
            client.get("/api/callback-secret").raise_for_status()
            if i:
                plain.append(time.perf_counter() - started)
        # The same submit with the worker idle: the message stays invisible (DelaySeconds) until
        # the task is cancelled, so nothing else runs while it is timed.
        delayed = [submit(client, {**sum_body(i), "delay_seconds": 900}) for i in range(n + 1)]
        for d in delayed:
            if d.task_id:
                client.post(f"/api/tasks/{d.task_id}/cancel").raise_for_status()
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    config = Config(retries={"max_attempts": 1})
    ddb = session.client("dynamodb", endpoint_url=stack.state["endpoint"], config=config)
    sqs = session.client("sqs", endpoint_url=stack.state["endpoint"], config=config)
    table = stack.state["physical"]["TasksTable"]["Ref"]
    queue = sqs.create_queue(QueueName="bench-probe")["QueueUrl"]  # no function reads it
    put, send = [], []
    cpu = time.thread_time()
    for i in range(n + 1):
        # outside every index of the table (no created_key, status_key or sweep_pk)
        item = {"task_id": {"S": f"bench-probe-{uuid.uuid4()}"}, "payload": {"S": "x" * 500}}
        started = time.perf_counter()
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(task_id)")
        middle = time.perf_counter()
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"probe": i}))
        if i:
            put.append(middle - started)
            send.append(time.perf_counter() - middle)
    cpu = time.thread_time() - cpu
    return {
        "client_cpu_per_call_ms": {"count": 2 * (n + 1), "mean": round(cpu * 1000 / (2 * (n + 1)), 2)},
        "worker_idle": summary([d.seconds for d in delayed[1:] if d.status == 202], scale=1000),
        "no_aws_call": summary(plain, scale=1000),
        "put_item": summary(put, scale=1000),
        "send_message": summary(send, scale=1000),
    }


def bench_throughput(stack: LocalStack, counts: LiveCounts, details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("throughput", quick)
    n = counts.throughput_tasks
    with stack.client() as client:
        wait_idle(client, 180)
    _warm(stack, counts.throughput_clients)
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


__all__ = ["LiveCounts", "bench_sse", "bench_submit", "bench_throughput", "percentile"]
