"""One whole flow on moto: API handler -> table + queue -> worker handler -> callbacks queue
-> notifier handler -> a real HTTP receiver, which verifies the signature."""

import json

from mangum import Mangum
from taskrunner.adapters.webhook_sender import verify
from taskrunner.entrypoints import notifier, worker
from taskrunner.entrypoints.api import create_app

from infra.local.esm import sqs_record
from infra.local.front import http_api_event
from tests.integration.conftest import owner_secret
from tests.support.lambda_context import LambdaContext
from tests.support.receiver import CallbackReceiver


def sqs_event(aws, logical):
    sqs = aws.session.client("sqs")
    url = aws.ref(logical)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    return {"Records": [sqs_record(m, aws.physical[logical]["Arn"], "us-east-1") for m in messages]}, messages


def call(api, method, path, body=None, accept="application/json"):
    raw = json.dumps(body).encode() if body is not None else b""
    headers = {"content-type": "application/json", "accept": accept, "host": "localhost"}
    path, _, query = path.partition("?")
    response = api(http_api_event(method, path, query, headers, raw, "127.0.0.1"), LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def test_submit_run_and_callback(aws, services):
    api = Mangum(create_app(lambda: services), lifespan="off")
    with CallbackReceiver() as receiver:
        status, accepted = call(
            api, "POST", "/api/tasks", {"type": "prime", "payload": {"input": 100}, "notify_url": receiver.url}
        )
        assert status == 202
        task_id = accepted["task_id"]
        assert call(api, "GET", f"/api/tasks/{task_id}/state")[1]["status"] == "PENDING"

        event, _ = sqs_event(aws, "TasksQueue")
        assert len(event["Records"]) == 1
        assert worker.process_batch(event, LambdaContext(), services) == {"batchItemFailures": []}
        status, state = call(api, "GET", f"/api/tasks/{task_id}/state")
        assert state["status"] == "COMPLETED" and state["result"] == {"n": 100, "prime": 541}

        # a duplicate delivery of the same message does not run the task again
        assert worker.process_batch(event, LambdaContext(), services) == {"batchItemFailures": []}
        assert call(api, "GET", f"/api/tasks/{task_id}/state")[1]["attempts"] == 1

        callbacks, _ = sqs_event(aws, "CallbacksQueue")
        assert notifier.process_batch(callbacks, LambdaContext(), services) == {"batchItemFailures": []}
        delivered = receiver.wait_for(1)
        body = delivered[0]["body"]
        assert verify(owner_secret("default"), delivered[0]["headers"], body)
        payload = json.loads(body)
        assert payload["task_id"] == task_id and payload["status"] == "COMPLETED" and payload["result"]["prime"] == 541
        state = call(api, "GET", f"/api/tasks/{task_id}/state")[1]
        assert state["callback"]["status"] == "DELIVERED" and state["callback"]["attempts"] == 1


def test_failed_callback_retries_via_visibility(aws, services):
    api = Mangum(create_app(lambda: services), lifespan="off")
    with CallbackReceiver(statuses=[500]) as receiver:
        _, accepted = call(
            api, "POST", "/api/tasks", {"name": "sum", "parameters": {"numbers": [2, 2]}, "callback_url": receiver.url}
        )
        event, _ = sqs_event(aws, "TasksQueue")
        worker.process_batch(event, LambdaContext(), services)
        callbacks, _ = sqs_event(aws, "CallbacksQueue")
        result = notifier.process_batch(callbacks, LambdaContext(), services)
        assert len(result["batchItemFailures"]) == 1
        state = call(api, "GET", f"/api/tasks/{accepted['task_id']}/state")[1]
        assert state["callback"]["status"] == "RETRYING" and "500" in state["callback"]["last_error"]


def test_api_errors_are_clear_and_change_nothing(aws, services):
    api = Mangum(create_app(lambda: services), lifespan="off")
    status, body = call(api, "POST", "/api/tasks", {"name": "chatgpt"})
    assert status == 422 and "sleep" in body["detail"][0]["known_types"]
    status, body = call(api, "POST", "/api/tasks", {"name": "sleep", "parameters": {"seconds": "soon"}})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "parameters", "seconds"]
    status, body = call(
        api,
        "POST",
        "/api/tasks",
        {"name": "sum", "parameters": {"a": 1, "b": 2}, "callback_url": "http://169.254.169.254/latest"},
    )
    assert status == 422 and body["detail"][0]["loc"] == ["body", "callback_url"]
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[64:ff9b::a00:5]/", "https://100.100.100.200/"):
        status, body = call(api, "POST", "/api/tasks", {"name": "http_request", "parameters": {"url": url}})
        assert status == 422, (url, body)
        assert body["detail"][0]["loc"] == ["body", "parameters", "url"] and "refused" in body["detail"][0]["msg"]
        assert body["detail"][0]["type"] == "url_not_allowed"
    status, body = call(api, "GET", "/api/tasks/nope/state")
    assert status == 404
    assert call(api, "GET", "/api/tasks?limit=100")[1]["tasks"] == []
    event, _ = sqs_event(aws, "TasksQueue")
    assert event["Records"] == []
