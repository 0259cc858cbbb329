"""Seed 000's walkthrough against `python -m infra.local`, over HTTP, as a user runs it."""

import concurrent.futures
import json
import subprocess
import sys

import pytest
from taskrunner.adapters.webhook_sender import verify

from infra.local.procs import free_port, wait_for_port
from tests.support.receiver import CallbackReceiver, poll
from tests.support.stack import LOCAL_SECRET, sse_events, start_stack

pytestmark = pytest.mark.e2e
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def run_seed_flow(stack):
    with stack.client() as client, CallbackReceiver() as receiver:
        accepted = client.post(
            "/api/tasks", json={"name": "sleep", "parameters": {"seconds": 2}, "callback_url": receiver.url}
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        assert accepted.json()["status"] == "PENDING"

        events = sse_events(client, f"/api/tasks/{task_id}")
        statuses = [e["data"]["status"] for e in events]
        assert statuses[-1] == "COMPLETED" and "RUNNING" in statuses
        assert statuses.index("RUNNING") < statuses.index("COMPLETED")
        ids = [e["id"] for e in events]
        assert ids == sorted(ids)
        assert any(0 < e["data"]["progress"]["percent"] < 100 for e in events if e["data"]["status"] == "RUNNING")

        state = client.get(f"/api/tasks/{task_id}/state").json()
        assert state["status"] == "COMPLETED" and state["result"]["slept_seconds"] == 2

        delivered = receiver.wait_for(1, timeout=20)[0]
        assert verify(LOCAL_SECRET, delivered["headers"], delivered["body"])
        payload = json.loads(delivered["body"])
        assert (
            payload["task_id"] == task_id and payload["status"] == "COMPLETED" and payload["result"] == state["result"]
        )
        poll(lambda: client.get(f"/api/tasks/{task_id}/state").json()["callback"]["status"] == "DELIVERED", 10)
        return task_id


def test_seed_000_walkthrough(stack):
    run_seed_flow(stack)


def test_fifty_concurrent_submissions_all_end(stack):
    def submit(i):
        with stack.client() as c:
            r = c.post(
                "/api/tasks",
                json={
                    "name": "sum" if i % 2 else "prime",
                    "parameters": {"numbers": [i, 1]} if i % 2 else {"n": i + 1},
                },
            )
            assert r.status_code == 202, r.text
            return r.json()["task_id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, range(50)))
    assert len(set(ids)) == 50
    with stack.client() as client:

        def all_done():
            states = [client.get(f"/api/tasks/{i}/state").json() for i in ids]
            return states if all(s["status"] in TERMINAL for s in states) else None

        states = poll(all_done, timeout=60, interval=0.5, message="50 tasks terminal")
    assert all(s["status"] == "COMPLETED" and s["attempts"] == 1 for s in states)


def test_other_seed_shapes_and_routes(stack):
    with stack.client() as client:
        r = client.post("/api/tasks", json={"task_name": "sum", "task_parameters": {"a": 10, "b": 20}})
        assert r.status_code == 202
        r2 = client.post(
            "/api/tasks", json={"type": "message", "payload": {"content": "Hello World"}, "notify_url": None}
        )
        assert r2.status_code == 202
        for tid in (r.json()["task_id"], r2.json()["task_id"]):
            poll(lambda tid=tid: client.get(f"/api/tasks/{tid}/state").json()["status"] == "COMPLETED", 20)
        assert (
            client.get(f"/api/tasks/{r.json()['task_id']}", headers={"accept": "application/json"}).json()["result"][
                "result"
            ]
            == 30
        )
        assert "Hello World" in [m["content"] for m in client.get("/api/messages").json()["messages"]]
        types = client.get("/api/task-types").json()["task_types"]
        assert {t["name"] for t in types} >= {
            "sleep",
            "prime",
            "fibonacci",
            "sum",
            "range_sum",
            "message",
            "http_request",
            "fail",
        }
        assert (
            client.get("/docs").status_code == 200 and client.get("/openapi.json").json()["info"]["title"] == "Task API"
        )
        assert client.get("/api/tasks/does-not-exist/state").status_code == 404
        assert client.get("/api/tasks/does-not-exist").status_code == 404
        bad = client.post("/api/tasks", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400
        listing = client.get("/api/tasks", params={"status": "COMPLETED", "limit": 2}).json()
        assert len(listing["tasks"]) == 2 and listing["next_cursor"]
        assert client.get("/health").json()["checks"] == {"dynamodb": "ok", "sqs": "ok"}


def test_cancel_running_task_and_resume_stream(stack):
    with stack.client() as client:
        tid = client.post("/api/tasks", json={"name": "sleep", "parameters": {"seconds": 30}}).json()["task_id"]
        poll(lambda: client.get(f"/api/tasks/{tid}/state").json()["status"] == "RUNNING", 20)
        version = client.get(f"/api/tasks/{tid}/state").json()["version"]
        assert client.post(f"/api/tasks/{tid}/cancel").json()["cancel_requested"] is True
        events = sse_events(client, f"/api/tasks/{tid}", headers={"Last-Event-ID": str(version)})
        assert events[-1]["data"]["status"] == "CANCELLED"
        assert all(e["id"] > version for e in events)  # resumed after the given event
        assert client.post(f"/api/tasks/{tid}/cancel").status_code == 409


def test_failing_task_retries_then_fails(stack):
    with stack.client() as client:
        tid = client.post(
            "/api/tasks", json={"name": "fail", "parameters": {"message": "boom"}, "max_attempts": 2}
        ).json()["task_id"]
        state = poll(lambda: (s := client.get(f"/api/tasks/{tid}/state").json())["status"] in TERMINAL and s, 30)
        assert (
            state["status"] == "FAILED"
            and state["attempts"] == 2
            and state["error"] == {"type": "IntentionalFailure", "message": "boom"}
        )


def test_against_a_separately_started_endpoint(tmp_path):
    """The way a LocalStack user runs it: the endpoint is named by AWS_ENDPOINT_URL."""
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 20)
        endpoint = f"http://127.0.0.1:{port}"
        running = start_stack(tmp_path, endpoint=endpoint)
        try:
            assert endpoint in running.log() and running.state["endpoint"] == endpoint
            run_seed_flow(running)
        finally:
            running.stop()
    finally:
        moto.terminate()
        moto.wait(10)


def test_cancelling_a_waiting_task_sends_its_callback(tmp_path):
    """The API itself enqueues the callback of a task it cancels before a worker holds it
    (its role must grant that send: the stack fails at stop on any IAM denial)."""
    running = start_stack(tmp_path, args=["--set", "RETRY_BASE_SECONDS=60", "--set", "RETRY_CAP_SECONDS=60"])
    try:
        with running.client() as client, CallbackReceiver() as receiver:
            body = {"name": "fail", "parameters": {"message": "boom"}, "max_attempts": 3, "callback_url": receiver.url}
            tid = client.post("/api/tasks", json=body).json()["task_id"]
            poll(lambda: client.get(f"/api/tasks/{tid}/state").json()["status"] == "RETRYING", 20)
            assert client.post(f"/api/tasks/{tid}/cancel").json()["status"] == "CANCELLED"
            delivered = receiver.wait_for(1, timeout=20)[0]
            assert json.loads(delivered["body"])["status"] == "CANCELLED"
        sends = [c for c in running.iam_calls() if c["function"] == "ApiFunction" and c["action"] == "sqs:SendMessage"]
        assert any(c["resource"] == running.state["physical"]["CallbacksQueue"]["Arn"] for c in sends)
    finally:
        running.stop()
