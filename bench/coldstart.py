"""Cold start: import time of each function's handler module in fresh interpreters, and the
first invocation's lazy set-up (app, services, clients) as far as it goes without AWS.

Each function is imported as the local stack runs it: with the Lambda runtime's Python
(python3.13) when this machine has it, and that function's bundle (functions/Makefile's
packages, .local/bundles/) on the path, so the figures count what Lambda imports and nothing
that only the development environment has installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .report import Row, at_most, command
from .stack import ROOT
from .stats import median

# What runs in each fresh interpreter: time the import, then the first call's lazy set-up.
PROBE = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import importlib
target, first = sys.argv[1], sys.argv[2]
module = importlib.import_module(target)
t1, c1 = time.perf_counter(), time.process_time()
if first == "api":
    http = {"method": "GET", "path": "/api/task-types", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}
    context = {"accountId": "123456789012", "apiId": "local", "domainName": "localhost", "http": http,
               "requestId": "cold", "routeKey": "ANY /{proxy+}", "stage": "$default", "timeEpoch": 0}
    event = {"version": "2.0", "routeKey": "ANY /{proxy+}", "rawPath": "/api/task-types", "rawQueryString": "",
             "headers": {"host": "localhost", "accept": "application/json"}, "requestContext": context,
             "isBase64Encoded": False}
    answer = module.handler(event, None)  # no API key: answered 401 before any AWS call
    assert answer["statusCode"] == 401, answer
elif first in ("worker", "notifier"):
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x",
                  "ApproximateFirstReceiveTimestamp": "0"}
    record = {"messageId": "m1", "receiptHandle": "r1", "body": "not json", "attributes": attributes,
              "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
    answer = module.handler({"Records": [record]}, None)  # a malformed message is dropped: no AWS call
    assert answer == {"batchItemFailures": []}, answer
elif first == "stream":
    import uvicorn  # run_stream.sh serves the app with uvicorn
t2 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "import_cpu_ms": (c1 - c0) * 1000,
                  "first_call_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000}))
"""

TARGETS: dict[str, tuple[str, str, float | None]] = {
    # function: (module, first-call kind, import budget in ms)
    "ApiFunction": ("taskrunner.entrypoints.api", "api", 300.0),
    "WorkerFunction": ("taskrunner.entrypoints.worker", "worker", 150.0),
    "NotifierFunction": ("taskrunner.entrypoints.notifier", "notifier", 150.0),
    "StreamFunction": ("taskrunner.entrypoints.stream", "stream", None),
    "bare boto3": ("boto3", "none", None),
    # FastAPI with the Starlette and pydantic it imports: the floor under the API's import
    "bare fastapi": ("fastapi", "none", None),
}
# The bundle each target imports from (functions/Makefile's kinds); the bare imports use the API's.
BUNDLE_OF = {"bare boto3": "ApiFunction", "bare fastapi": "ApiFunction"}
FOR_SCALE = ("bare boto3", "bare fastapi")

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "TASKS_TABLE_NAME": "tasks",
    "MESSAGES_TABLE_NAME": "messages",
    "API_KEYS_TABLE_NAME": "keys",
    "TASKS_QUEUE_URL": "http://127.0.0.1:9/123456789012/tasks",
    "CALLBACKS_QUEUE_URL": "http://127.0.0.1:9/123456789012/callbacks",
    "SIGNING_SECRET": "whsec_YmVuY2htYXJrLWNvbGQtc3RhcnQ=",
    "POWERTOOLS_SERVICE_NAME": "taskrunner",
    # tracing stays on, as in Lambda (Tracing: Active): the first call builds the Tracer and
    # patches botocore; its segments go to a UDP port of 127.0.0.1 nobody reads
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def _runtime() -> tuple[str, dict[str, Path | None]]:
    """(the interpreter, each target's bundle): the Lambda runtime's Python and the bundles the
    local stack runs the functions with; without that Python, this interpreter and its packages."""
    from infra.local.bundles import ensure_bundle, function_kinds, runtime_python

    python = runtime_python()
    if python is None:
        return sys.executable, dict.fromkeys(TARGETS)
    kinds = function_kinds()
    bundles: dict[str, Path | None] = {}
    for name in TARGETS:
        kind = kinds[BUNDLE_OF.get(name, name)]
        bundles[name], _ = ensure_bundle(kind, python, ROOT / ".local" / "bundles")
    return python, bundles


def _env(pycache: Path, *, write: bool, bundle: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update(FAKE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "functions"), str(bundle) if bundle else str(ROOT)])
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _probe(python: str, module: str, first: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [python, "-c", PROBE, module, first],
        env=env,
        cwd=str(ROOT / "functions"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"import of {module} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _startup_ms(python: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", "pass"], env=env, check=True)
    return (time.perf_counter() - started) * 1000


def bench_coldstart(runs: int, details: dict[str, Any], quick: bool, *, without_bytecode: bool = True) -> list[Row]:
    cmd = command("coldstart", quick)
    samples: dict[str, dict[str, list[float]]] = {
        name: {"import_ms": [], "import_cpu_ms": [], "first_call_ms": [], "total_ms": [], "nocache_import_ms": []}
        for name in TARGETS
    }
    startup: list[float] = []
    python, bundles = _runtime()
    with (
        tempfile.TemporaryDirectory(prefix="bench-pyc-") as warm_dir,
        tempfile.TemporaryDirectory(prefix="bench-nopyc-") as cold_dir,
    ):
        warm = {name: _env(Path(warm_dir), write=True, bundle=bundles[name]) for name in TARGETS}
        for name, (module, first, _) in TARGETS.items():  # fill the bytecode cache once
            _probe(python, module, first, warm[name])
        # The same cache without the bytecode of anything under the repository (.venv's
        # packages, functions/): the standard library keeps its .pyc, as on Lambda.
        stdlib_only = Path(cold_dir) / "cache"
        shutil.copytree(warm_dir, stdlib_only)
        shutil.rmtree(stdlib_only / ROOT.relative_to(ROOT.anchor), ignore_errors=True)
        for bundle in {b for b in bundles.values() if b is not None}:  # a bundle may live outside ROOT
            shutil.rmtree(stdlib_only / bundle.relative_to(ROOT.anchor), ignore_errors=True)
        cold = {name: _env(stdlib_only, write=False, bundle=bundles[name]) for name in TARGETS}
        for _ in range(runs):  # round-robin, so background noise spreads over every target
            startup.append(_startup_ms(python, warm["bare boto3"]))
            for name, (module, first, _) in TARGETS.items():
                got = _probe(python, module, first, warm[name])
                for key in ("import_ms", "import_cpu_ms", "first_call_ms", "total_ms"):
                    samples[name][key].append(got[key])
        if without_bytecode:
            for _ in range(max(1, runs // 2)):
                for name, (module, first, _) in TARGETS.items():
                    if name in FOR_SCALE:
                        continue
                    samples[name]["nocache_import_ms"].append(_probe(python, module, first, cold[name])["import_ms"])
    medians = {name: {k: round(median(v), 1) for k, v in s.items() if v} for name, s in samples.items()}
    details["coldstart"] = {
        "runs": runs,
        "interpreter_startup_ms": round(median(startup), 1),
        "median_ms": medians,
        "samples_ms": {name: {k: [round(x, 1) for x in v] for k, v in s.items()} for name, s in samples.items()},
        "method": (
            "each figure is timed inside a fresh interpreter (python -c), so interpreter start-up is not in it; "
            "import_cpu_ms is the import's CPU time (process_time), which other work on a shared machine "
            "disturbs far less than the wall-clock import_ms; "
            "bytecode cache filled beforehand (PYTHONPYCACHEPREFIX); 'without .pyc' keeps the standard library's "
            "bytecode but compiles the packages and functions/ from source, as Lambda does with a bundle that ships no "
            f".pyc. {python} with each function's bundle ({', '.join(sorted({b.name for b in bundles.values() if b}))})"
            " on this machine; Lambda runs python3.13 on arm64"
        ),
    }
    rows: list[Row] = []
    for name, (module, _, budget) in TARGETS.items():
        m = medians[name]
        rows.append(
            Row(
                f"coldstart.{name}.import",
                "5 cold start",
                f"import {module}" + (" (for scale)" if name in FOR_SCALE else ""),
                m.get("import_ms"),
                "ms",
                f"<= {budget:.0f} ms" if budget else "",
                at_most(m.get("import_ms"), budget) if budget else None,
                cmd,
                f"median of {runs}",
            )
        )
        rows.append(
            Row(
                f"coldstart.{name}.import_cpu",
                "5 cold start",
                f"{name}: CPU time of the import (steadier than wall clock on a shared machine)",
                m.get("import_cpu_ms"),
                "ms",
                "",
                None,
                cmd,
                f"median of {runs}",
            )
        )
        if name not in FOR_SCALE:
            rows.append(
                Row(
                    f"coldstart.{name}.first",
                    "5 cold start",
                    f"{name}: import + first call's set-up",
                    m.get("total_ms"),
                    "ms",
                    "",
                    None,
                    cmd,
                )
            )
            if m.get("nocache_import_ms") is not None:
                rows.append(
                    Row(
                        f"coldstart.{name}.nopyc",
                        "5 cold start",
                        f"{name}: import, packages without .pyc (as the SAM bundle ships)",
                        m.get("nocache_import_ms"),
                        "ms",
                        "",
                        None,
                        cmd,
                    )
                )
    rows.append(
        Row(
            "coldstart.interpreter",
            "5 cold start",
            "interpreter start-up (python -c pass), for scale",
            round(median(startup), 1),
            "ms",
            "",
            None,
            cmd,
        )
    )
    return rows
