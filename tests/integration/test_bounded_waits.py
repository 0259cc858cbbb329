"""A hung AWS endpoint (accepts connections, never answers): the API answers 503 with
Retry-After within its budget, stores nothing, and /health does not show where the endpoint is."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from taskrunner.bootstrap import build_services
from taskrunner.config import Settings
from taskrunner.entrypoints.api import create_app

BUDGET_SECONDS = 5.0


@contextlib.contextmanager
def hung_endpoint() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP server on 127.0.0.1 that accepts every connection, reads, and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.05)
            held.append(conn)
        for conn in held:
            conn.close()

    def drain() -> None:
        while not stop.is_set():
            for conn in list(held):
                with contextlib.suppress(OSError):
                    data = conn.recv(65536)
                    if data:
                        received.append(data)
            time.sleep(0.02)

    threads = [threading.Thread(target=serve, daemon=True), threading.Thread(target=drain, daemon=True)]
    for t in threads:
        t.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", received
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        server.close()


@pytest.fixture
def hung(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with hung_endpoint() as (url, received):
        settings = Settings(
            endpoint_url=url,
            tasks_table_name="tasks",
            tasks_queue_url=f"{url}/123456789012/tasks",
            callbacks_queue_url=f"{url}/123456789012/callbacks",
            auth_required=False,
            signing_secret="whsec_aGFuZy10ZXN0LXNlY3JldA==",
        )
        services = build_services(settings)
        yield url, received, TestClient(create_app(lambda: services))


def test_submit_against_a_hung_store_answers_503_quickly_and_stores_nothing(hung):
    url, received, client = hung
    started = time.monotonic()
    answer = client.post("/api/tasks", json={"name": "sum", "parameters": {"a": 1, "b": 2}})
    elapsed = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"]
    assert "DynamoDB" in answer.json()["detail"] and url not in answer.text
    assert elapsed <= BUDGET_SECONDS, f"503 after {elapsed:.1f} s"
    # the store was asked (and never answered): no write was acknowledged, and nothing reached SQS
    sent = b"".join(received)
    assert b"DynamoDB_20120810" in sent
    assert b"SendMessage" not in sent


def test_health_names_the_failing_dependency_but_not_its_address(hung):
    url, _, client = hung
    started = time.monotonic()
    answer = client.get("/health")
    elapsed = time.monotonic() - started
    assert answer.status_code == 503 and answer.headers["retry-after"]
    checks = answer.json()["checks"]
    assert set(checks) == {"dynamodb", "sqs"}
    assert all(value.startswith("unavailable") for value in checks.values()), checks
    port = url.rsplit(":", 1)[1]
    for leak in (url, "127.0.0.1", port, "http"):
        assert leak not in answer.text, f"/health shows {leak!r}: {answer.text}"
    assert elapsed <= 2 * BUDGET_SECONDS, f"/health answered after {elapsed:.1f} s"


def test_worker_record_against_a_hung_store_fails_within_its_bound_for_redelivery(monkeypatch):
    """The worker's claim never gets an answer: the record is reported failed (SQS delivers
    it again) within attempts x read timeout plus backoff, and no write was acknowledged, so
    no attempt was spent."""
    import json

    from taskrunner.entrypoints.worker import process_batch

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with hung_endpoint() as (url, received):
        settings = Settings(endpoint_url=url, tasks_table_name="tasks", tasks_queue_url=f"{url}/123456789012/tasks")
        services = build_services(settings)
        body = {"task_id": "t-1", "owner": "alice", "created_at": "2026-12-03T00:00:00.000Z", "timeout": 30}
        event = {
            "Records": [
                {
                    "messageId": "m-1",
                    "receiptHandle": "r-1",
                    "body": json.dumps(body),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tasks",
                    "awsRegion": "us-east-1",
                }
            ]
        }
        started = time.monotonic()
        answer = process_batch(event, None, services)
        elapsed = time.monotonic() - started
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    bound = settings.aws_total_max_attempts * (settings.aws_read_timeout_seconds + 1) + 1
    assert elapsed <= bound, f"the record failed after {elapsed:.1f} s (bound {bound} s)"
    assert b"DynamoDB_20120810" in b"".join(received)
