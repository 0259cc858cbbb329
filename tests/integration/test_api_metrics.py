"""The API's opt-in ``GET /api/metrics`` (METRICS_ENDPOINT_ENABLED): 404 while off (before the
key is asked for), 401 without a key, and with one the queues' depths in Prometheus text."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from taskrunner.adapters.dynamodb_keys import DynamoDbApiKeyStore
from taskrunner.bootstrap import build_services
from taskrunner.entrypoints.api import create_app

from infra.keys import create_key

QUEUES = {"TasksQueue", "IoTasksQueue", "PriorityTasksQueue", "CallbacksQueue", "TasksDLQ", "CallbacksDLQ"}


@pytest.fixture
def api(aws, settings):
    def build(enabled: bool) -> tuple[TestClient, str]:
        configured = dataclasses.replace(
            settings,
            auth_required=True,
            metrics_endpoint_enabled=enabled,
            tasks_dlq_url=aws.ref("TasksDLQ"),
            callbacks_dlq_url=aws.ref("CallbacksDLQ"),
        )
        services = build_services(configured)
        store = DynamoDbApiKeyStore(aws.session.client("dynamodb"), aws.ref("ApiKeysTable"))
        key, _ = create_key(store, "ops", "metrics test")
        return TestClient(create_app(lambda: services)), key

    return build


def test_off_by_default_is_404_even_with_a_key(api):
    client, key = api(False)
    assert client.get("/api/metrics").status_code == 404
    assert client.get("/api/metrics", headers={"X-Api-Key": key}).status_code == 404


def test_on_it_needs_the_api_key(api):
    client, _ = api(True)
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers={"X-Api-Key": "tr_nope0000_wrong"}).status_code == 401


def test_on_with_a_key_the_queues_depths_in_prometheus_text(aws, api):
    sqs = aws.session.client("sqs")
    sqs.send_message(QueueUrl=aws.ref("TasksQueue"), MessageBody="{}")
    sqs.send_message(QueueUrl=aws.ref("TasksQueue"), MessageBody="{}")
    sqs.send_message(QueueUrl=aws.ref("TasksDLQ"), MessageBody="{}")
    client, key = api(True)
    answer = client.get("/api/metrics", headers={"X-Api-Key": key})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    visible = {s.labels["queue"]: s.value for s in families["taskrunner_queue_messages_visible"].samples}
    assert set(visible) == QUEUES
    assert visible["TasksQueue"] == 2 and visible["CallbacksQueue"] == 0
    dead = {s.labels["queue"]: s.value for s in families["taskrunner_dead_letter_queue_messages"].samples}
    assert dead == {"TasksDLQ": 1, "CallbacksDLQ": 0}
    assert {s.labels["queue"] for s in families["taskrunner_queue_messages_in_flight"].samples} == QUEUES
    # on AWS the oldest message's age is CloudWatch's: not in this scrape
    assert "taskrunner_queue_oldest_message_age_seconds" not in families
