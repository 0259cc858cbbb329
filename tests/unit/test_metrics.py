"""The local runner's /metrics: the functions' EMF documents become Prometheus metrics
(names, labels, base units, histogram buckets) and the queues' depths are gauges."""

import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from taskrunner.adapters.prometheus_queues import QueueDepths

from infra.local.metrics import (
    RUN_BUCKETS,
    EmfTranslator,
    LogTail,
    RunnerMetrics,
    snake,
)


def emf(name, value, unit="Count", task_type="sleep", **extra):
    """An EMF line as Powertools' single_metric writes it."""
    doc = {
        "_aws": {
            "Timestamp": 1796305899719,
            "CloudWatchMetrics": [
                {
                    "Namespace": "taskrunner",
                    "Dimensions": [["task_type", "service"]],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        "task_type": task_type,
        "service": "taskrunner",
        name: [value],
        **extra,
    }
    return json.dumps(doc, separators=(",", ":"))


def scrape(registry):
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def sample(families, family, name, **labels):
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name} {labels} in {families[family].samples}")


@pytest.mark.parametrize(
    ("emf_name", "status"),
    [
        ("TasksSubmitted", "submitted"),
        ("TasksStarted", "started"),
        ("TasksCompleted", "completed"),
        ("TasksFailed", "failed"),
        ("TasksRetried", "retried"),
        ("TasksCancelled", "cancelled"),
        ("TasksRedriven", "redriven"),
    ],
)
def test_task_counters_are_one_family_labelled_by_type_and_status(emf_name, status):
    registry = CollectorRegistry()
    translator = EmfTranslator(registry)
    assert translator.line(emf(emf_name, 1.0, task_type="prime"), "WorkerFunction") == 1
    translator.line(emf(emf_name, 1.0, task_type="prime"), "WorkerFunction")
    families = scrape(registry)
    assert families["taskrunner_tasks"].type == "counter"
    assert sample(families, "taskrunner_tasks", "taskrunner_tasks_total", task_type="prime", status=status) == 2
    assert (
        sample(families, "taskrunner_emf_documents", "taskrunner_emf_documents_total", function="WorkerFunction") == 2
    )


@pytest.mark.parametrize(
    ("emf_name", "outcome"),
    [("CallbacksDelivered", "delivered"), ("CallbackRetries", "retried"), ("CallbacksFailed", "failed")],
)
def test_callback_outcomes(emf_name, outcome):
    registry = CollectorRegistry()
    EmfTranslator(registry).line(emf(emf_name, 1.0), "NotifierFunction")
    families = scrape(registry)
    assert (
        sample(families, "taskrunner_callbacks", "taskrunner_callbacks_total", task_type="sleep", outcome=outcome) == 1
    )


def test_durations_are_histograms_in_seconds():
    registry = CollectorRegistry()
    translator = EmfTranslator(registry)
    translator.line(emf("RunDuration", 3037.5, unit="Milliseconds"))
    translator.line(emf("RunDuration", 4.0, unit="Milliseconds"))
    translator.line(emf("QueueWait", 809.439, unit="Milliseconds"))
    families = scrape(registry)
    run = "taskrunner_task_run_duration_seconds"
    assert families[run].type == "histogram"
    assert sample(families, run, f"{run}_count", task_type="sleep") == 2
    assert sample(families, run, f"{run}_sum", task_type="sleep") == pytest.approx(3.0415)
    assert sample(families, run, f"{run}_bucket", task_type="sleep", le="0.005") == 1
    assert sample(families, run, f"{run}_bucket", task_type="sleep", le="2.5") == 1
    assert sample(families, run, f"{run}_bucket", task_type="sleep", le="5.0") == 2
    buckets = [float(s.labels["le"]) for s in families[run].samples if s.name.endswith("_bucket")]
    assert buckets == [*map(float, RUN_BUCKETS), float("inf")]
    wait = "taskrunner_task_queue_wait_seconds"
    assert sample(families, wait, f"{wait}_sum", task_type="sleep") == pytest.approx(0.809439)
    assert sample(families, wait, f"{wait}_bucket", task_type="sleep", le="1.0") == 1
    assert sample(families, wait, f"{wait}_bucket", task_type="sleep", le="0.5") == 0


def test_metrics_without_a_mapping_follow_the_conventions_by_unit():
    registry = CollectorRegistry()
    translator = EmfTranslator(registry)
    assert translator.line(emf("SegmentsHandedOver", 2.0)) == 1
    assert translator.line(emf("HandOverGap", 1.5, unit="Seconds")) == 1
    assert translator.line(emf("SomeNewDelay", 250, unit="Milliseconds")) == 1
    assert translator.line(emf("PayloadSize", 1024, unit="Bytes")) == 0
    families = scrape(registry)
    assert sample(families, "taskrunner_segments_handed_over", "taskrunner_segments_handed_over_total") == 2
    gap = "taskrunner_segment_handover_gap_seconds"
    assert sample(families, gap, f"{gap}_sum") == 1.5
    assert sample(families, "taskrunner_some_new_delay_seconds", "taskrunner_some_new_delay_seconds_sum") == 0.25
    assert (
        sample(families, "taskrunner_emf_metrics_ignored", "taskrunner_emf_metrics_ignored_total", metric="PayloadSize")
        == 1
    )
    for name in families:
        assert name == name.lower() and " " not in name


def test_lines_that_are_not_emf_are_skipped():
    registry = CollectorRegistry()
    translator = EmfTranslator(registry)
    assert translator.line('{"level":"INFO","message":"submitted","task_id":"t"}') == 0
    assert translator.line('{"_aws": broken') == 0
    assert translator.line("Traceback (most recent call last):") == 0
    assert translator.line('{"_aws": 3}') == 0
    # several values in one document, a document without a task type
    doc = json.loads(emf("TasksSubmitted", 1.0))
    doc["TasksSubmitted"] = [1.0, 1.0, 1.0]
    del doc["task_type"]
    assert translator.line(json.dumps(doc)) == 3
    assert sample(scrape(registry), "taskrunner_tasks", "taskrunner_tasks_total", task_type="", status="submitted") == 3


def test_snake_case():
    assert snake("CallbackRetries") == "callback_retries"
    assert snake("HandOverGap") == "hand_over_gap"
    assert snake("DLQDepth") == "dlq_depth"


def test_the_tail_reads_what_is_appended_after_it_started(tmp_path):
    path = tmp_path / "WorkerFunction.log"
    path.write_text(emf("TasksStarted", 1.0) + "\n")  # before the runner: not counted
    registry = CollectorRegistry()
    tail = LogTail({"WorkerFunction": path, "Missing": tmp_path / "Missing.log"}, EmfTranslator(registry))
    assert tail.poll() == 0
    line = emf("TasksCompleted", 1.0)
    with path.open("a") as f:
        f.write('{"level":"INFO","message":"completed"}\n' + line[:40])  # half a line so far
    assert tail.poll() == 0
    with path.open("a") as f:
        f.write(line[40:] + "\n")
    assert tail.poll() == 1
    path.write_text(emf("TasksFailed", 1.0) + "\n")  # replaced by a shorter file: read from its start
    assert tail.poll() == 1
    families = scrape(registry)
    assert sample(families, "taskrunner_tasks", "taskrunner_tasks_total", status="completed") == 1
    assert sample(families, "taskrunner_tasks", "taskrunner_tasks_total", status="failed") == 1
    assert not [s for s in families["taskrunner_tasks"].samples if s.labels["status"] == "started"]


class FakeSqs:
    def __init__(self, attributes):
        self.attributes = attributes
        self.calls = []

    def get_queue_attributes(self, QueueUrl, AttributeNames):
        self.calls.append((QueueUrl, tuple(AttributeNames)))
        return {"Attributes": self.attributes[QueueUrl]}


def test_queue_depths_are_gauges_per_queue_with_the_dead_letter_queues_apart():
    base = "http://127.0.0.1:4566/123456789012/"
    dlq_arn = "arn:aws:sqs:us-east-1:123456789012:p-TasksDLQ"
    sqs = FakeSqs(
        {
            base + "p-TasksQueue": {
                "ApproximateNumberOfMessages": "5",
                "ApproximateNumberOfMessagesNotVisible": "2",
                "ApproximateNumberOfMessagesDelayed": "1",
                "QueueArn": "arn:aws:sqs:us-east-1:123456789012:p-TasksQueue",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 15}),
            },
            base + "p-TasksDLQ": {
                "ApproximateNumberOfMessages": "3",
                "ApproximateNumberOfMessagesNotVisible": "1",
                "ApproximateNumberOfMessagesDelayed": "0",
                "QueueArn": dlq_arn,
            },
        }
    )
    queues = {"TasksQueue": base + "p-TasksQueue", "TasksDLQ": base + "p-TasksDLQ"}
    depths = QueueDepths(sqs, queues, lambda: {"p-TasksQueue": 12.5})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(depths)
    assert sqs.calls == []  # registering asks nothing
    families = scrape(registry)
    assert (
        sample(families, "taskrunner_queue_messages_visible", "taskrunner_queue_messages_visible", queue="TasksQueue")
        == 5
    )
    assert (
        sample(
            families, "taskrunner_queue_messages_in_flight", "taskrunner_queue_messages_in_flight", queue="TasksQueue"
        )
        == 2
    )
    assert (
        sample(families, "taskrunner_queue_messages_delayed", "taskrunner_queue_messages_delayed", queue="TasksQueue")
        == 1
    )
    dead = families["taskrunner_dead_letter_queue_messages"].samples
    assert [(s.labels["queue"], s.value) for s in dead] == [("TasksDLQ", 4)]
    age = "taskrunner_queue_oldest_message_age_seconds"
    assert sample(families, age, age, queue="TasksQueue") == 12.5
    assert sample(families, age, age, queue="TasksDLQ") == 0
    assert {families[n].type for n in families} == {"gauge"}


def test_a_scrape_reads_the_logs_first(tmp_path):
    """The front serves RunnerMetrics.scrape on GET /metrics (tests/e2e/test_metrics.py)."""
    log = tmp_path / "ApiFunction.log"
    log.write_text("")
    metrics = RunnerMetrics({"ApiFunction": log})
    with log.open("a") as f:
        f.write(emf("TasksSubmitted", 1.0, task_type="sum") + "\n")
    families = {f.name: f for f in text_string_to_metric_families(metrics.scrape().decode())}
    assert sample(families, "taskrunner_tasks", "taskrunner_tasks_total", task_type="sum", status="submitted") == 1
    assert sample(families, "taskrunner_runner_up", "taskrunner_runner_up") == 1
