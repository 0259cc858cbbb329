"""The local runner runs the functions as Lambda will: the template's environment plus only
the declared exceptions, python3.13 with each function's own bundle, tracing and metrics on."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from infra.local.exceptions import describe
from infra.local.procs import environ
from infra.local.template import functions, load_template
from infra.local.xray import read_segments
from tests.support.processes import descendants
from tests.support.receiver import CallbackReceiver

pytestmark = pytest.mark.e2e
LAMBDA_RUNTIME = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_LOG_FORMAT",
    "AWS_EXECUTION_ENV",
    "AWS_XRAY_CONTEXT_MISSING",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "TZ",
    "LANG",
    "PATH",
    "PYTHONPATH",
}


def test_each_function_gets_the_template_environment_and_declared_exceptions_only(stack):
    specs = functions(load_template())
    exceptions = stack.state["exceptions"]
    seen = 0
    for name, env in stack.state["environments"].items():
        declared = {
            variable.strip()
            for e in exceptions
            if e["kind"] in ("env", "credentials") and (not e["functions"] or name in e["functions"])
            for variable in e["variable"].split(",")
        }
        assert set(env) <= LAMBDA_RUNTIME | set(specs[name].environment) | declared, name
        assert set(specs[name].environment) <= set(env), name
        for key in ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_DISABLED", "SIGNING_SECRET", "VIRTUAL_ENV"):
            assert key not in env, (name, key)
        assert ".venv" not in env["PYTHONPATH"] and ".venv" not in env["PATH"], name
        # what the processes really got
        for proc in descendants(stack.proc.pid):
            if "infra/local/child.py" in proc.cmdline and f" {name} " in proc.cmdline:
                assert environ(proc.pid) == env, name
                seen += 1
    assert seen >= 5
    for name in ("ApiFunction", "NotifierFunction", "StreamFunction"):
        assert stack.state["environments"][name]["SIGNING_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
    # the startup summary lists every exception, as declared
    log = stack.log()
    assert "local exceptions to template.yaml's environment" in log
    for line in describe_state(exceptions):
        assert line in log


def describe_state(exceptions: list[dict]) -> list[str]:
    from infra.local.exceptions import LocalException

    return describe(LocalException(**{**e, "functions": tuple(e["functions"])}) for e in exceptions)


def test_functions_run_on_the_lambda_runtimes_python(stack):
    python = stack.state["python"]
    assert python.endswith("python3.13"), f"functions ran on {python} (python3.13 missing?)"
    for proc in descendants(stack.proc.pid):
        if "infra/local/child.py" in proc.cmdline:
            assert proc.cmdline.startswith(python + " "), proc.cmdline
            bundle = environ(proc.pid)["PYTHONPATH"].split(":")[0]
            kind = Path(bundle).name.split("-")[0]
            assert kind in ("api", "worker"), bundle
            assert not (Path(bundle) / ("fastapi" if kind == "worker" else "uvicorn")).exists()


def test_segments_reach_the_xray_daemon_for_api_worker_and_notifier(stack):
    with stack.client() as client, CallbackReceiver() as receiver:
        accepted = client.post(
            "/api/tasks", json={"name": "sum", "parameters": {"a": 2, "b": 3}, "callback_url": receiver.url}
        )
        assert accepted.status_code == 202, accepted.text
        receiver.wait_for(1, timeout=30)
    path = Path(stack.state["xray"]["segments"])
    wanted = {
        ("ApiFunction", "dynamodb"),
        ("ApiFunction", "sqs"),
        ("WorkerFunction", "dynamodb"),
        ("WorkerFunction", "sqs"),
        ("NotifierFunction", "dynamodb"),
    }
    deadline = time.monotonic() + 10
    while True:
        records = read_segments(path)
        got = {(r["function"], r["name"]) for r in records if r["namespace"] == "aws"}
        handlers = {r["function"] for r in records if r["name"] == "## handler"}
        if (wanted <= got and {f for f, _ in wanted} <= handlers) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    counts = Counter(r["function"] for r in records)
    print("segments per function:", json.dumps(dict(counts)))
    assert wanted <= got, got
    assert {"ApiFunction", "WorkerFunction", "NotifierFunction"} <= handlers
    assert all(r["trace_id"] and r["trace_id"].startswith("1-") for r in records)
    assert "unknown" not in counts


def test_metrics_and_logs_go_to_each_functions_log_file(stack):
    with stack.client() as client:
        assert client.post("/api/tasks", json={"name": "sum", "parameters": {"a": 1, "b": 1}}).status_code == 202
    worker_log = Path(stack.state["logs"]["WorkerFunction"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and '"TasksCompleted"' not in worker_log.read_text():
        time.sleep(0.2)
    lines = [json.loads(line) for line in worker_log.read_text().splitlines() if line.startswith("{")]
    emf = [line for line in lines if "_aws" in line]
    assert any("TasksCompleted" in line for line in emf)
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "taskrunner" for m in emf)
    assert any(line.get("message") == "completed" for line in lines)
    # INFO logs and metrics stay out of the console
    assert '"TasksCompleted"' not in stack.log()


def test_request_over_lambdas_6mb_payload_is_413(stack):
    with stack.client() as client:
        answer = client.post("/api/tasks", content=b"x" * (6 * 1024 * 1024 + 1))
    assert answer.status_code == 413
