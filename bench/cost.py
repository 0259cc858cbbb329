"""Requests per task and $ per million tasks at list prices, from counted flows."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .billing import FlowResult
from .report import Row, at_most, command
from .stats import median

# us-east-1 list prices
PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_per_million_requests": 0.20,
    "sqs_per_million_requests": 0.40,  # standard queue, per 64 KB chunk
    "dynamodb_per_million_wru": 0.625,  # on-demand
    "dynamodb_per_million_rru": 0.125,
    "http_api_per_million_requests": 1.00,
}
REQUEST_BUDGET = 5.0


@dataclasses.dataclass
class Scenario:
    """Everything one task costs: the calls of its flows, its Lambda invocations and time."""

    name: str
    calls_per_task: dict[str, float]  # "<service> <operation>" -> calls
    by_actor: dict[str, dict[str, float]]
    sqs_requests: float
    dynamodb_requests: float
    other_aws_requests: float
    wru: float
    wru_indexes: float
    rru: float
    lambda_requests: dict[str, float]  # function -> invocations per task
    lambda_gb_seconds: dict[str, float]
    api_gateway_requests: float

    @property
    def aws_requests(self) -> float:
        return self.sqs_requests + self.dynamodb_requests + self.other_aws_requests

    @property
    def all_requests(self) -> float:
        return self.aws_requests + sum(self.lambda_requests.values()) + self.api_gateway_requests

    def cost_per_million(self) -> dict[str, float]:
        p = PRICES
        out = {
            "API Gateway": self.api_gateway_requests * p["http_api_per_million_requests"],
            "Lambda requests": sum(self.lambda_requests.values()) * p["lambda_per_million_requests"],
            "Lambda duration": sum(self.lambda_gb_seconds.values()) * p["lambda_gb_second_arm64"] * 1e6,
            "SQS": self.sqs_requests * p["sqs_per_million_requests"],
            "DynamoDB writes": (self.wru + self.wru_indexes) * p["dynamodb_per_million_wru"],
            "DynamoDB reads": self.rru * p["dynamodb_per_million_rru"],
        }
        out["total"] = sum(out.values())
        return {k: round(v, 2) for k, v in out.items()}


def _billed_ms(durations: list[float]) -> float:
    """Lambda bills each invocation's duration rounded up to the millisecond."""
    return float(sum(math.ceil(d) for d in durations))


def scenario(name: str, flows: list[FlowResult], memory: dict[str, int]) -> Scenario:
    """Add per-task figures of ``flows`` (each normalised by its own task count)."""
    calls: dict[str, float] = {}
    by_actor: dict[str, dict[str, float]] = {}
    lambda_requests: dict[str, float] = {}
    gbs: dict[str, float] = {}
    sqs = ddb = other = wru = wru_idx = rru = 0.0
    for flow in flows:
        for key, value in flow.per_task().items():
            calls[key] = round(calls.get(key, 0.0) + value, 3)
        for actor, ops in flow.per_task_by_actor().items():
            mine = by_actor.setdefault(actor, {})
            for key, value in ops.items():
                mine[key] = round(mine.get(key, 0.0) + value, 3)
        sqs += flow.requests_per_task("sqs")
        ddb += flow.requests_per_task("dynamodb")
        other += flow.requests_per_task("secretsmanager", "sns", "s3")
        units = flow.units_per_task()
        wru += units["wru_table"]
        wru_idx += units["wru_indexes"]
        rru += units["rru"]
        for function, count in flow.invocations.items():
            lambda_requests[function] = lambda_requests.get(function, 0.0) + count / flow.tasks
        for function, durations in flow.durations_ms.items():
            gb = memory.get(function, 128) / 1024
            gbs[function] = gbs.get(function, 0.0) + _billed_ms(durations) / 1000 * gb / flow.tasks
    return Scenario(
        name=name,
        calls_per_task=dict(sorted(calls.items())),
        by_actor=by_actor,
        sqs_requests=round(sqs, 3),
        dynamodb_requests=round(ddb, 3),
        other_aws_requests=round(other, 3),
        wru=round(wru, 2),
        wru_indexes=round(wru_idx, 2),
        rru=round(rru, 2),
        lambda_requests={k: round(v, 3) for k, v in lambda_requests.items()},
        lambda_gb_seconds={k: round(v, 6) for k, v in gbs.items()},
        api_gateway_requests=1.0,
    )


def _breakdown(s: Scenario) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in s.calls_per_task.items())


def bench_requests(flows: list[FlowResult], memory: dict[str, int], details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("requests", quick)
    by_name = {f.name: f for f in flows}
    scenarios = [
        scenario("no callback", [by_name["no callback"]], memory),
        scenario("with callback", [by_name["with callback"]], memory),
        scenario("30 s stream", [by_name["no callback"], by_name["stream"]], memory),
    ]
    base = by_name["no callback"]
    details["requests"] = {
        "tasks_per_flow": base.tasks,
        "scenarios": {
            s.name: {
                **dataclasses.asdict(s),
                "aws_requests": round(s.aws_requests, 3),
                "all_billed_requests": round(s.all_requests, 3),
                "cost_per_million_tasks_usd": s.cost_per_million(),
            }
            for s in scenarios
        },
        "handler_ms_median": {f.name: {k: round(median(v), 1) for k, v in f.durations_ms.items()} for f in flows},
        "handler_time_split_ms": {
            f.name: {
                fn: {"handlers": round(sum(d), 1), "in_aws_calls": f.call_ms().get(fn, 0.0), "invocations": len(d)}
                for fn, d in f.durations_ms.items()
            }
            for f in flows
            if f.name != "stream"
        },
        "task_item_bytes": base.item_bytes,
        "index_wru_per_task": {f.name: f.index_units_per_task() for f in flows},
        "stream_run": by_name["stream"].extra,
        "prices_usd_us_east_1": PRICES,
        "assumptions": ASSUMPTIONS,
    }
    split = details["requests"]["handler_time_split_ms"]["no callback"]
    handlers = sum(v["handlers"] for v in split.values())
    in_calls = sum(v["in_aws_calls"] for v in split.values())
    moto_share = round(100 * in_calls / handlers) if handlers else 0
    rows: list[Row] = []
    for s in scenarios:
        budget = f"<= {REQUEST_BUDGET:g}" if s.name == "no callback" else ""
        ok = at_most(s.aws_requests, REQUEST_BUDGET) if s.name == "no callback" else None
        rows.append(
            Row(
                f"requests.{s.name}",
                "7 billed requests",
                f"{s.name}: DynamoDB + SQS requests per task",
                round(s.aws_requests, 2),
                "req/task",
                budget,
                ok,
                cmd,
                _breakdown(s),
            )
        )
    for s in scenarios:
        lam = sum(s.lambda_requests.values())
        rows.append(
            Row(
                f"requests.{s.name}.all",
                "7 billed requests",
                f"{s.name}: all billed requests per task (+ API Gateway, Lambda invocations)",
                round(s.all_requests, 2),
                "req/task",
                "",
                None,
                cmd,
                f"API Gateway {s.api_gateway_requests:g}, Lambda {lam:.2f}",
            )
        )
    for s in scenarios:
        c = s.cost_per_million()
        parts = ", ".join(f"{k} ${v:.2f}" for k, v in c.items() if k != "total")
        rows.append(
            Row(
                f"cost.{s.name}",
                "7 cost",
                f"{s.name}: $ per million tasks",
                f"${c['total']:.2f}",
                "",
                "",
                None,
                cmd,
                f"{parts}; DynamoDB {s.wru:g} WRU + {s.wru_indexes:g} index WRU + {s.rru:g} RRU per task"
                + (
                    f"; {moto_share}% of the measured handler time is in AWS calls to in-process moto"
                    if s.name == "no callback"
                    else ""
                ),
            )
        )
    return rows


ASSUMPTIONS = [
    "Prices: us-east-1 list prices: Lambda arm64 $0.0000133334 per GB-s and $0.20 per 1M requests; SQS standard $0.40 "
    "per 1M requests (64 KB chunks; every message here is far smaller); DynamoDB on-demand $0.625 per 1M WRU, $0.125 "
    "per 1M RRU; API Gateway HTTP API $1.00 per 1M requests. Free tiers, CloudWatch Logs, X-Ray (Tracing: Active) and "
    "data transfer are left out.",
    "Counted: every boto3 call of the functions, by a botocore hook, over a real flow on moto (API handler through "
    "Mangum, worker, notifier, stream app), after one warm-up task per flow (the API key lookup is cached 60 s per "
    "environment, the signing secret 5 min: not per task).",
    "Lambda's event source mapping: one ReceiveMessage and one DeleteMessageBatch per batch, batches full (the "
    "template's BatchSize: 10 for the tasks and callbacks queues): steady load with long polling. Idle polling "
    "(Lambda's pollers keep long-polling an empty queue, ~1 request per 20 s per poller) is a fixed monthly cost, not "
    "per task; at a trickle of tasks each batch holds one message and it is 2 SQS requests per task instead of 0.2.",
    "DynamoDB capacity: measured item sizes, 1 WRU per KB (rounded up; the larger of the item before and after), 1 RRU "
    "per 4 KB strongly consistent, half that eventually consistent; each global secondary index the write touches is "
    "billed too: a put when the item enters it, a delete when it leaves, both when its key changes, an update when a "
    "projected attribute changes (TasksTable: by-owner-active (name), by-owner-done (status, name) and by-due "
    "(keys only), all sparse and sharded; see bench/hotkeys.py).",
    "Lambda duration: each handler invocation timed in this process against moto (Python 3.11 on this machine; Lambda "
    "runs 3.13 on arm64 with CPU in proportion to memory, and real DynamoDB/SQS round trips of ~5-10 ms), rounded up "
    "per invocation to 1 ms, at the template's MemorySize (ApiFunction 512 MB, WorkerFunction 1024 MB, "
    "NotifierFunction 256 MB, StreamFunction 256 MB); the stream is billed for the whole 30 s it stays open.",
    "The 30 s stream: StreamFunction (Function URL, response streaming) with STREAM_POLL_SECONDS=0.5 as on AWS: a "
    "GetItem on connect and one per poll (~2/s); run 10 times faster (poll 0.05 s for 3 s) with the same number of "
    "polls.",
    "The budget of 5 requests per task counts AWS service requests (DynamoDB, SQS, Secrets Manager) of the no-callback "
    "flow; the API Gateway request and the Lambda invocations are counted beside it.",
]
