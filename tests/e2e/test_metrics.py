"""The local runner's Prometheus /metrics, scraped as a Prometheus server scrapes it: the
functions' EMF metrics (task counters, duration histograms, callback outcomes) and the
queues' depths, in the text format prometheus_client's parser reads."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.receiver import CallbackReceiver

pytestmark = pytest.mark.e2e

QUEUES = {"TasksQueue", "IoTasksQueue", "PriorityTasksQueue", "CallbacksQueue", "TasksDLQ", "CallbacksDLQ"}


def scrape(stack: Any) -> dict[str, Any]:
    answer = httpx.get(f"{stack.url}/metrics", timeout=30)  # no API key: the runner's own endpoint
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    """The sum of a sample over the series that carry ``labels`` (0 before the first)."""
    return sum(
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_follow_tasks_callbacks_and_queues(stack):
    before = scrape(stack)
    with CallbackReceiver() as receiver, stack.client() as client:
        ids = []
        for a in range(3):
            answer = client.post(
                "/api/tasks", json={"name": "sum", "parameters": {"a": a, "b": 1}, "callback_url": receiver.url}
            )
            assert answer.status_code in (200, 201, 202), answer.text
            ids.append(answer.json()["task_id"])
        answer = client.post("/api/tasks", json={"name": "fail", "parameters": {"retryable": False}})
        ids.append(answer.json()["task_id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [client.get(f"/api/tasks/{i}/state").json()["status"] for i in ids]
            if statuses == ["COMPLETED"] * 3 + ["FAILED"] and len(receiver.payloads()) >= 3:
                break
            time.sleep(0.5)
        assert statuses == ["COMPLETED"] * 3 + ["FAILED"]

    # the functions write their EMF lines as they go: a scrape a moment later has them all
    def moved(families: dict[str, Any]) -> bool:
        def delta(name: str, **labels: str) -> float:
            return value(families, name, **labels) - value(before, name, **labels)

        return (
            delta("taskrunner_tasks_total", task_type="sum", status="submitted") >= 3
            and delta("taskrunner_tasks_total", task_type="sum", status="started") >= 3
            and delta("taskrunner_tasks_total", task_type="sum", status="completed") >= 3
            and delta("taskrunner_tasks_total", task_type="fail", status="failed") >= 1
            and delta("taskrunner_callbacks_total", task_type="sum", outcome="delivered") >= 3
            and delta("taskrunner_task_run_duration_seconds_count", task_type="sum") >= 3
            and delta("taskrunner_task_queue_wait_seconds_count", task_type="sum") >= 3
        )

    deadline = time.monotonic() + 15
    after = scrape(stack)
    while not moved(after) and time.monotonic() < deadline:
        time.sleep(0.5)
        after = scrape(stack)
    assert moved(after), {name: after[name].samples for name in after if name.startswith("taskrunner_t")}

    # names and types by the conventions
    assert after["taskrunner_tasks"].type == "counter"
    assert after["taskrunner_callbacks"].type == "counter"
    for histogram in ("taskrunner_task_run_duration_seconds", "taskrunner_task_queue_wait_seconds"):
        assert after[histogram].type == "histogram"
        buckets = [
            s for s in after[histogram].samples if s.name == f"{histogram}_bucket" and s.labels["task_type"] == "sum"
        ]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 3
        assert value(after, f"{histogram}_sum", task_type="sum") > 0

    # every queue of template.yaml has its depth gauges; the dead-letter queues apart
    for gauge in (
        "taskrunner_queue_messages_visible",
        "taskrunner_queue_messages_in_flight",
        "taskrunner_queue_messages_delayed",
        "taskrunner_queue_oldest_message_age_seconds",
    ):
        assert after[gauge].type == "gauge"
        assert {s.labels["queue"] for s in after[gauge].samples} == QUEUES
        assert all(s.value >= 0 for s in after[gauge].samples)
    assert {s.labels["queue"] for s in after["taskrunner_dead_letter_queue_messages"].samples} == {
        "TasksDLQ",
        "CallbacksDLQ",
    }


def test_metrics_answer_get_only(stack):
    assert httpx.post(f"{stack.url}/metrics", timeout=10).status_code == 405
    assert httpx.head(f"{stack.url}/metrics", timeout=10).status_code == 200
