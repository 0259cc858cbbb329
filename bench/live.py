"""Benchmarks through a running local stack, the first of three: what they share (counts,
the warm-up) and submit latency; throughput with CPU per task is in ``throughput.py``, status
change -> Server-Sent Event latency in ``sse.py``."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from .report import Row, at_most, command
from .stack import (
    LocalStack,
    run_clients,
    submit,
    wait_idle,
)
from .stats import summary


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


def warm(stack: LocalStack, clients: int) -> None:
    """One request per client at once, so every API environment exists before timing."""
    run_clients(clients, list(range(clients)), lambda c, i: submit(c, sum_body(i)), stack.client)


def bench_submit(stack: LocalStack, counts: LiveCounts, details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("submit", quick)
    warm(stack, counts.concurrent_clients)
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
