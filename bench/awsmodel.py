"""Latency on AWS, modelled from parts: what this run measured of our code, plus what AWS adds.

Nothing here calls AWS. The parts that are ours are measured in the same ``make bench`` run
(the cold-start imports, the API's request path without AWS calls, the client CPU of one AWS
call); they were measured on this machine and are scaled to the CPU Lambda gives a function
of the template's ``MemorySize`` (a full vCPU at 1,769 MB, in proportion below, which AWS
documents). The parts that are AWS's are documented where AWS documents them and otherwise
are stated assumptions, each with its source in :data:`AWS_PARTS`: change one there and the
model follows. The model's job is to show which part dominates each path, not to promise a
millisecond.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .report import Row, command
from .stack import ROOT

DEFAULT_RESULTS = ROOT / "bench-results.json"

FULL_VCPU_MB = 1769  # Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"


@dataclasses.dataclass(frozen=True)
class Part:
    ms: float
    source: str


# What AWS adds, p50. "documented" figures come from AWS's documentation; the others are
# assumptions (AWS publishes no latency for them) in the range commonly measured in-region.
AWS_PARTS: dict[str, Part] = {
    "api_gateway": Part(10.0, "assumption: HTTP API's own latency (not published; 5-20 ms commonly measured)"),
    "invoke": Part(2.0, "assumption: a warm Lambda invocation's overhead"),
    "dynamodb": Part(5.0, 'documented order: DynamoDB "single-digit millisecond" reads and writes'),
    "sqs_send": Part(10.0, "assumption: SendMessage in-region (not published)"),
    "esm_pickup": Part(20.0, "assumption: an event source mapping's long poll returns a new message (batch window 0)"),
    "runtime_init": Part(120.0, "assumption: the python3.13 managed runtime's own start before our import"),
    "stream_overhead": Part(5.0, "assumption: a streamed chunk from a Function URL to the client"),
}


def cpu_scale(memory_mb: int) -> float:
    """How much longer CPU work takes at ``memory_mb`` than on one full core."""
    return max(1.0, FULL_VCPU_MB / memory_mb)


def _previous(*results: Path) -> tuple[dict[str, Any], Path | None]:
    """The details of the first results file that has the measured parts."""
    for path in results:
        try:
            details = dict(json.loads(path.read_text()).get("details", {}))
        except (OSError, ValueError):
            continue
        if "submit" in details and "coldstart" in details:
            return details, path
    return {}, None


def _get(details: dict[str, Any], *path: str) -> float | None:
    value: Any = details
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else None


def model(details: dict[str, Any], memory: dict[str, int], stream_poll_seconds: float) -> dict[str, Any]:
    """The modelled paths, each as its parts (ms) and a total; ``details`` holds the measured parts."""
    aws = {k: p.ms for k, p in AWS_PARTS.items()}
    call_cpu = _get(details, "submit", "parts_ms", "client_cpu_per_call_ms", "mean")
    request_path = _get(details, "submit", "parts_ms", "no_aws_call", "p50")
    api, worker, stream = (cpu_scale(memory.get(f, 128)) for f in ("ApiFunction", "WorkerFunction", "StreamFunction"))
    paths: dict[str, dict[str, float]] = {}
    if call_cpu is None or request_path is None:
        return {}  # the submit benchmark measures both; without them there is nothing to model
    paths = {
        "submit (warm), p50": {
            "API Gateway": aws["api_gateway"],
            "Lambda invoke": aws["invoke"],
            f"our request path x{api:.2f} (CPU share at {memory.get('ApiFunction')} MB)": request_path * api,
            f"2 AWS calls' client CPU x{api:.2f}": 2 * call_cpu * api,
            "PutItem": aws["dynamodb"],
            "SendMessage": aws["sqs_send"],
        },
        "accepted -> worker running the task, p50": {
            "event source mapping picks the message up": aws["esm_pickup"],
            "Lambda invoke": aws["invoke"],
            f"claim's client CPU x{worker:.2f}": call_cpu * worker,
            "claim (UpdateItem)": aws["dynamodb"],
        },
        "status change -> SSE event at the client, p50": {
            f"half the stream's poll interval ({stream_poll_seconds} s)": stream_poll_seconds * 500,
            f"GetItem's client CPU x{stream:.2f} (at {memory.get('StreamFunction')} MB)": call_cpu * stream,
            "GetItem": aws["dynamodb"],
            "Function URL streaming": aws["stream_overhead"],
        },
        "status change -> SSE event at the client, worst case": {
            f"a whole poll interval ({stream_poll_seconds} s)": stream_poll_seconds * 1000,
            f"GetItem's client CPU x{stream:.2f}": call_cpu * stream,
            "GetItem": aws["dynamodb"],
            "Function URL streaming": aws["stream_overhead"],
        },
    }
    for function in ("ApiFunction", "WorkerFunction", "NotifierFunction", "StreamFunction"):
        imported = _get(details, "coldstart", "median_ms", function, "import_ms")
        first = _get(details, "coldstart", "median_ms", function, "first_call_ms")
        if imported is None:
            continue
        # AWS does not say how much CPU the init phase gets: from the function's share (the
        # upper bound here) to a full core (the lower bound)
        for bound, scale in (("upper", cpu_scale(memory.get(function, 128))), ("lower", 1.0)):
            paths[f"cold start, {function} ({memory.get(function)} MB), {bound} bound"] = {
                "runtime start": aws["runtime_init"],
                f"import of the handler x{scale:.2f}": imported * scale,
                f"first call's lazy set-up x{scale:.2f} (app, services, clients)": (first or 0.0) * scale,
            }
    return {
        name: {"parts_ms": {k: round(v, 1) for k, v in parts.items()}, "total_ms": round(sum(parts.values()), 1)}
        for name, parts in paths.items()
    }


def bench_awsmodel(details: dict[str, Any], results: Path, quick: bool) -> list[Row]:
    """Rows of the model; measured parts from this run, else from the last results file."""
    from infra.local.template import functions, load_template

    template = load_template()
    specs = functions(template)
    memory = {name: spec.memory for name, spec in specs.items()}
    poll = float(specs["StreamFunction"].environment.get("STREAM_POLL_SECONDS", 0.5))
    measured: dict[str, Any] = {k: details[k] for k in ("coldstart", "submit") if k in details}
    previous, source = _previous(results, DEFAULT_RESULTS)
    for key in ("coldstart", "submit"):
        if key not in measured and key in previous:
            measured[key] = previous[key]
    paths = model(measured, memory, poll)
    details["awsmodel"] = {
        "paths": paths,
        "aws_parts": {k: dataclasses.asdict(p) for k, p in AWS_PARTS.items()},
        "measured_from": {k: ("this run" if k in details else str(source)) for k in measured},
    }
    if not paths:
        raise RuntimeError("nothing measured to model: run the submit and coldstart benchmarks first")
    rows: list[Row] = []
    for name, path in paths.items():
        biggest = max(path["parts_ms"].items(), key=lambda kv: kv[1])
        rows.append(
            Row(
                f"awsmodel.{name.split(',')[0].split(' ')[0]}.{len(rows)}",
                "AWS latency model",
                name,
                path["total_ms"],
                "ms",
                note=f"largest part: {biggest[0]} {biggest[1]:.0f} ms",
                command=command("awsmodel", quick),
            )
        )
    return rows
