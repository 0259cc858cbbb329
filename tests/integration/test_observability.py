"""Structured logs follow a task from API to worker to notifier, and never carry secrets."""

import dataclasses
import io
import json
import logging

from aws_lambda_powertools import Logger
from fastapi.testclient import TestClient
from taskrunner.adapters.powertools_telemetry import PowertoolsTelemetry
from taskrunner.bootstrap import build_services
from taskrunner.entrypoints import notifier, worker
from taskrunner.entrypoints.api import create_app
from taskrunner.entrypoints.stream import create_stream_app

from infra.keys import create_key
from tests.integration.conftest import SECRET, owner_secret
from tests.integration.test_flow import sqs_event
from tests.support.lambda_context import LambdaContext
from tests.support.receiver import CallbackReceiver


def test_one_task_followed_through_logs_without_secrets(aws, settings, caplog):
    buffer = io.StringIO()
    log = Logger(service="taskrunner-test", logger_handler=logging.StreamHandler(buffer), level="DEBUG")
    services = build_services(dataclasses.replace(settings, auth_required=True))
    telemetry = PowertoolsTelemetry(log, "test", metrics_enabled=False)
    for service in (services.tasks, services.worker, services.callbacks, services.reconciler):
        service._telemetry = telemetry
    raw_key, _ = create_key(services.keys, "alice", "test")
    caplog.set_level(logging.DEBUG, logger="taskrunner")
    api = TestClient(create_app(lambda: services))
    with CallbackReceiver() as receiver:
        accepted = api.post(
            "/api/tasks",
            json={"name": "sum", "parameters": {"a": 1, "b": 2}, "callback_url": receiver.url},
            headers={"X-Api-Key": raw_key},
        )
        assert accepted.status_code == 202
        task_id = accepted.json()["task_id"]
        token = accepted.json()["links"]["stream"].split("token=")[1]
        assert api.get("/api/tasks", headers={"X-Api-Key": "tr_wrong_key"}).status_code == 401
        worker.process_batch(sqs_event(aws, "TasksQueue")[0], LambdaContext(), services)
        notifier.process_batch(sqs_event(aws, "CallbacksQueue")[0], LambdaContext(), services)
        receiver.wait_for(1)
        stream = TestClient(create_stream_app(lambda: services))
        assert stream.get(f"/api/tasks/{task_id}?token={token}").status_code == 200
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    steps = [line["message"] for line in lines if line.get("task_id") == task_id]
    assert steps == ["submitted", "started", "completed", "callback_delivered"]
    assert all(line["task_type"] == "sum" for line in lines if line.get("task_id") == task_id)
    everything = buffer.getvalue() + "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    for secret in (
        raw_key,
        token,
        SECRET,
        SECRET.removeprefix("whsec_"),
        owner_secret("alice"),
        owner_secret("alice").removeprefix("whsec_"),
    ):
        assert secret not in everything


def test_metrics_are_emitted_as_emf(aws, settings, capsys):
    services = build_services(settings)
    telemetry = PowertoolsTelemetry(
        Logger(service="t", logger_handler=logging.StreamHandler(io.StringIO())), "taskrunner-test"
    )
    for service in (services.tasks, services.worker):
        service._telemetry = telemetry
    api = TestClient(create_app(lambda: services))
    api.post("/api/tasks", json={"name": "fail", "parameters": {"retryable": False}})
    worker.process_batch(sqs_event(aws, "TasksQueue")[0], LambdaContext(), services)
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{") and "_aws" in line
    ]
    names = {m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in emitted}
    assert {"TasksSubmitted", "TasksStarted", "QueueWait", "TasksFailed", "RunDuration"} <= names
    assert all(
        m["task_type"] == "fail" and m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "taskrunner-test"
        for m in emitted
    )
