"""Fault injection against the local runner: nothing accepted is lost.

Each test starts its own stack with short timings, breaks one thing (a worker process, a
duplicate SQS delivery, a task timeout, a failing or absent callback receiver, DynamoDB or
SQS errors during submit, the whole runner killed) and checks that every task the API
accepted (202) ends in a terminal status with the right result, and that nothing the API
refused (503) left a task or a message behind.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from taskrunner.adapters.dynamodb_codec import item_to_task
from taskrunner.adapters.sqs_queue import task_message
from taskrunner.adapters.webhook_sender import verify

from infra.local.procs import free_port, wait_for_port
from tests.support.faults import Fault, FaultProxy
from tests.support.processes import descendants, function_processes, kill, wait_gone
from tests.support.receiver import CallbackReceiver, poll
from tests.support.stack import RunningStack, owner_secret, start_stack

pytestmark = pytest.mark.e2e

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
WORKER = "taskrunner.entrypoints.worker.handler"
TASK_QUEUES = ("TasksQueue", "IoTasksQueue", "PriorityTasksQueue")
FAST = ["--reconcile-every", "1", "--set", "LEASE_GRACE_SECONDS=1"]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


# ------------------------------------------------------------------------------ helpers
def aws(service: str, endpoint: str) -> Any:
    return boto3.session.Session(**CREDENTIALS).client(service, endpoint_url=endpoint)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A separately started AWS endpoint (moto's server) on 127.0.0.1, stopped afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 20), "moto server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def running(tmp: Path, **kw: Any) -> Iterator[RunningStack]:
    tmp.mkdir(parents=True, exist_ok=True)
    stack = start_stack(tmp, **kw)
    try:
        yield stack
    finally:
        stack.stop()


def submit(client: httpx.Client, body: dict[str, Any], **kw: Any) -> str:
    answer = client.post("/api/tasks", json=body, **kw)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "PENDING"
    return str(answer.json()["task_id"])


def state(client: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/tasks/{task_id}/state")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def wait_terminal(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll until every task is terminal; return their states."""
    done: dict[str, dict[str, Any]] = {}

    def all_terminal() -> bool:
        for task_id in ids:
            if task_id not in done:
                current = state(client, task_id)
                if current["status"] in TERMINAL:
                    done[task_id] = current
        return len(done) == len(ids)

    try:
        poll(all_terminal, timeout, interval=0.2, message=f"{len(ids)} tasks terminal")
    except AssertionError:
        left = {t: state(client, t)["status"] for t in ids if t not in done}
        raise AssertionError(f"{len(left)} of {len(ids)} tasks not terminal within {timeout} s: {left}") from None
    return done


def queue_depth(sqs: Any, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs.get(n, "0")) for n in names)


def wait_drained(stack: RunningStack, logical: str, timeout: float = 20) -> None:
    """Poll until a queue holds no message (visible, in flight or delayed)."""
    sqs = aws("sqs", stack.state["endpoint"])
    url = stack.state["physical"][logical]["Ref"]
    try:
        poll(lambda: queue_depth(sqs, url) == 0, timeout, interval=0.2, message=f"{logical} drained")
    finally:
        sqs.close()


def stored_tasks(endpoint: str, table: str) -> list[dict[str, Any]]:
    """Every item of the tasks table, read straight from the endpoint."""
    ddb = aws("dynamodb", endpoint)
    try:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = ddb.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    finally:
        ddb.close()


# ------------------------------------------------------------------------------ 1. worker killed
def test_worker_killed_mid_task_is_redriven_and_completes(tmp_path: Path) -> None:
    # PENDING_GRACE_SECONDS stays at its local 30 s: a re-driven message that got lost again
    # (e.g. handed to a dead environment) would need a second re-drive and miss the deadline.
    with running(tmp_path, args=FAST) as stack, stack.client() as client:
        task_id = submit(client, {"name": "sleep", "parameters": {"seconds": 4}, "timeout_seconds": 5})
        poll(lambda: state(client, task_id)["status"] == "RUNNING", 20, message="task RUNNING")
        assert state(client, task_id)["attempts"] == 1
        # a second, quick task while the first runs: the worker then has an idle environment too
        quick = submit(client, {"name": "sum", "parameters": {"a": 1, "b": 2}})
        assert wait_terminal(client, [quick], 20)[quick]["status"] == "COMPLETED"
        assert state(client, task_id)["status"] == "RUNNING"
        workers = function_processes(stack.proc.pid, WORKER)
        assert len(workers) >= 2, workers
        killed_at = time.monotonic()
        kill(workers, signal.SIGKILL)  # the busy environment and the idle one
        assert not wait_gone(workers, 5), "worker processes survived SIGKILL"

        # A claim leaves due_at at created + the pending grace (30 s here): the reconciler
        # re-drives once that and the lease (timeout 5 s + grace 1 s) have both passed.
        final = wait_terminal(client, [task_id], 55)[task_id]
        recovered = time.monotonic() - killed_at
        assert final["status"] == "COMPLETED", final
        assert final["result"]["slept_seconds"] == 4
        assert final["attempts"] == 2
        assert final["error"] is None
        # the pending grace and the lease run out, the reconciler re-drives, the task runs 4 s again;
        # only the invocation in progress failed, not the re-drive that met the dead idle environment
        log = stack.log()
        assert log.count("environment crashed during invocation") == 1, log
        print(f"killed {len(workers)} worker environments; COMPLETED on attempt 2, {recovered:.1f} s after the kill")


# ------------------------------------------------------------------------------ 2. duplicate delivery
def test_same_message_delivered_twice_runs_once(tmp_path: Path) -> None:
    with running(tmp_path, args=FAST) as stack, stack.client() as client:
        content = f"exactly-once-{uuid.uuid4().hex}"
        task_id = submit(client, {"name": "message", "parameters": {"content": content}, "timeout_seconds": 5})
        endpoint, physical = stack.state["endpoint"], stack.state["physical"]
        ddb, sqs = aws("dynamodb", endpoint), aws("sqs", endpoint)
        try:
            item = ddb.get_item(
                TableName=physical["TasksTable"]["Ref"], Key={"task_id": {"S": task_id}}, ConsistentRead=True
            )["Item"]
            body = task_message(item_to_task(item))  # byte for byte what the API sent
            queue = physical["TasksQueue"]["Ref"]
            sqs.send_message(QueueUrl=queue, MessageBody=body)  # a second copy, racing the first
            final = wait_terminal(client, [task_id], 20)[task_id]
            sqs.send_message(QueueUrl=queue, MessageBody=body)  # and a third, after the task ended
            wait_drained(stack, "TasksQueue")  # every copy was received and deleted
        finally:
            ddb.close()
            sqs.close()
        assert final["status"] == "COMPLETED" and final["result"]["content"] == content
        again = state(client, task_id)
        assert again["attempts"] == 1 and again["version"] == final["version"]
        stored = [
            m for m in client.get("/api/messages", params={"limit": 100}).json()["messages"] if m["content"] == content
        ]
        assert len(stored) == 1 and stored[0]["task_id"] == task_id


# ------------------------------------------------------------------------------ 3. task timeout
def test_task_outliving_its_timeout_is_retried_then_failed(tmp_path: Path) -> None:
    with running(tmp_path, args=[*FAST, "--set", "RETRY_BASE_SECONDS=2"]) as stack, stack.client() as client:
        task_id = submit(
            client, {"name": "sleep", "parameters": {"seconds": 10}, "timeout_seconds": 1, "max_attempts": 2}
        )
        retrying = poll(
            lambda: (s := state(client, task_id))["status"] == "RETRYING" and s,
            20,
            interval=0.05,
            message="task RETRYING",
        )
        assert retrying["attempts"] == 1
        assert retrying["error"]["type"] == "TaskTimeoutError"
        assert retrying["next_attempt_at"]
        final = wait_terminal(client, [task_id], 30)[task_id]
        assert final["status"] == "FAILED", final
        assert final["error"]["type"] == "TaskTimeoutError" and "1" in final["error"]["message"]
        assert final["attempts"] == 2
        assert final["result"] is None and final["next_attempt_at"] is None
        print(f"RETRYING (next_attempt_at {retrying['next_attempt_at']}), then FAILED: {final['error']}")


# ------------------------------------------------------------------------------ 4. flaky receiver
def test_callback_retried_until_the_receiver_answers(tmp_path: Path) -> None:
    args = [*FAST, "--set", "CALLBACK_RETRY_BASE_SECONDS=1", "--set", "CALLBACK_RETRY_CAP_SECONDS=2"]
    with running(tmp_path, args=args) as stack, stack.client() as client, CallbackReceiver([500, 500, 500]) as receiver:
        task_id = submit(client, {"name": "sum", "parameters": {"numbers": [20, 22]}, "callback_url": receiver.url})
        receiver.wait_for(1, timeout=40)
        final = poll(
            lambda: (s := state(client, task_id))["callback"]["status"] == "DELIVERED" and s,
            10,
            message="callback DELIVERED",
        )
        wait_drained(stack, "CallbacksQueue")  # nothing more is coming
        requests = list(receiver.requests)
        assert [r["status"] for r in requests] == [500, 500, 500, 200]
        assert len({r["headers"]["webhook-id"] for r in requests}) == 1  # one message id: receivers can dedupe
        last = requests[-1]
        assert verify(owner_secret("dev"), last["headers"], last["body"])
        payload = json.loads(last["body"])
        assert payload["task_id"] == task_id and payload["status"] == "COMPLETED" and payload["result"]["result"] == 42
        assert final["status"] == "COMPLETED" and final["result"]["result"] == 42
        assert final["callback"]["attempts"] == 4
        assert final["callback"]["last_error"] is None and final["callback"]["delivered_at"]
        print(f"callback: {[r['status'] for r in requests]}; {final['callback']}")


# ------------------------------------------------------------------------------ 5. receiver down
def test_callback_to_a_receiver_that_stays_down_fails_and_the_task_stays_intact(tmp_path: Path) -> None:
    args = [
        *FAST,
        "--set",
        "CALLBACK_MAX_ATTEMPTS=3",
        "--set",
        "CALLBACK_RETRY_BASE_SECONDS=1",
        "--set",
        "CALLBACK_RETRY_CAP_SECONDS=2",
    ]
    # A bound socket that never listens: connections to it are refused, and no one else can take the port.
    closed = socket.socket()
    try:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        with running(tmp_path, args=args) as stack, stack.client() as client:
            task_id = submit(client, {"name": "sum", "parameters": {"a": 40, "b": 2}, "callback_url": url})
            final = poll(
                lambda: (s := state(client, task_id))["callback"]["status"] == "FAILED" and s,
                40,
                message="callback FAILED",
            )
            wait_drained(stack, "CallbacksQueue")
            after = state(client, task_id)
    finally:
        closed.close()
    callback = final["callback"]
    assert callback["attempts"] == 3
    assert callback["last_error"] and "refused" in callback["last_error"].lower(), callback
    assert callback["delivered_at"] is None
    assert final["status"] == "COMPLETED" and final["result"] == {"operation": "sum", "result": 42, "a": 40, "b": 2}
    assert final["error"] is None and final["attempts"] == 1
    assert after["callback"] == callback and after["status"] == "COMPLETED"
    print(f"callback: {callback}")


# ------------------------------------------------------------------------------ 6. AWS errors on submit
def test_store_and_queue_errors_during_submit_lose_nothing_and_leave_nothing(tmp_path: Path) -> None:
    args = [*FAST, "--set", "PENDING_GRACE_SECONDS=2"]
    with (
        moto_server() as upstream,
        FaultProxy(upstream) as proxy,
        running(tmp_path, endpoint=proxy.url, args=args) as stack,
    ):
        physical = stack.state["physical"]
        table = physical["TasksTable"]["Ref"]
        task_queues = {physical[q]["QueueName"] for q in TASK_QUEUES}
        accepted: dict[str, int] = {}  # task id -> expected sum
        with stack.client() as client:
            for i in range(2):
                accepted[submit(client, {"name": "sum", "parameters": {"a": i, "b": 100}})] = i + 100

            # SQS refuses task messages (the queue is gone): the API still accepts, the task is stored PENDING
            sqs_down = proxy.inject(
                Fault(
                    "sqs",
                    {"SendMessage"},
                    task_queues,
                    400,
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "The specified queue does not exist.",
                )
            )
            mark = time.monotonic()
            during_sqs = {}
            for i in range(5):
                during_sqs[submit(client, {"name": "sum", "parameters": {"a": i, "b": 200}})] = i + 200
            assert all(state(client, t)["status"] == "PENDING" for t in during_sqs)
            # the reconciler's re-sends fail too, until SQS is back
            poll(lambda: sqs_down.hits > len(during_sqs), 15, interval=0.1, message="the reconciler tried to re-send")
            sends = proxy.calls("sqs", "SendMessage", since=mark)
            assert sends and all(c.injected for c in sends if set(c.resources) & task_queues)
            assert all(state(client, t)["status"] == "PENDING" for t in during_sqs)
            proxy.clear(sqs_down)
            back = time.monotonic()
            accepted.update(during_sqs)
            states = wait_terminal(client, list(during_sqs), 30)
            sqs_recovery = time.monotonic() - back

            # DynamoDB fails on the tasks table: the API answers 503 and sends nothing
            refused: list[tuple[dict[str, Any], dict[str, str]]] = []
            mark = time.monotonic()
            for code, status in (("ResourceNotFoundException", 400), ("InternalServerError", 500)):
                ddb_down = proxy.inject(Fault("dynamodb", None, {table}, status, code))
                for i in range(3):
                    body = {"name": "sum", "parameters": {"a": i, "b": 300 + len(refused)}}
                    headers = {"Idempotency-Key": f"refused-{uuid.uuid4().hex}"} if i == 2 else {}
                    answer = client.post("/api/tasks", json=body, headers=headers)
                    assert answer.status_code == 503, answer.text
                    assert answer.headers.get("retry-after")
                    assert "DynamoDB" in answer.json()["detail"]
                    refused.append((body, headers))
                proxy.clear(ddb_down)
            writes = [
                c
                for c in proxy.calls("dynamodb", since=mark)
                if table in c.resources and c.action in ("PutItem", "TransactWriteItems", "UpdateItem")
            ]
            assert writes and all(c.injected for c in writes), "a write reached the table while it was failing"
            assert not [c for c in proxy.calls("sqs", "SendMessage", since=mark) if set(c.resources) & task_queues]

            # nothing refused was stored: the table holds exactly the accepted tasks
            items = stored_tasks(upstream, table)
            assert sorted(i["task_id"]["S"] for i in items) == sorted(accepted)
            listed = client.get("/api/tasks", params={"limit": 100}).json()["tasks"]
            assert sorted(t["task_id"] for t in listed) == sorted(accepted)

            # the client retries what was refused (as Retry-After says): accepted now, each once
            retried = {}
            for body, headers in refused:
                answer = client.post("/api/tasks", json=body, headers=headers)
                assert answer.status_code == 202, answer.text
                assert answer.headers.get("idempotent-replayed") is None  # the refused attempt left no key behind
                retried[answer.json()["task_id"]] = body["parameters"]["a"] + body["parameters"]["b"]
            accepted.update(retried)
            states.update(wait_terminal(client, list(accepted), 30))
        for task_id, expected in accepted.items():
            assert states[task_id]["status"] == "COMPLETED", states[task_id]
            assert states[task_id]["result"]["result"] == expected
            assert states[task_id]["attempts"] == 1
        assert len(stored_tasks(upstream, table)) == len(accepted) + 2  # plus the two idempotency records
        wait_drained(stack, "TasksQueue")
        assert sqs_recovery < 20, sqs_recovery
        print(
            f"{len(accepted)} accepted, all COMPLETED once; {len(refused)} refused with 503 and nothing stored; "
            f"tasks accepted while SQS failed COMPLETED {sqs_recovery:.1f} s after it came back"
        )


def test_lost_store_response_during_submit_is_not_an_orphan(tmp_path: Path) -> None:
    """DynamoDB stores a new task but its answer is lost (a 5xx or a reset after the write):
    botocore's retry then fails attribute_not_exists(task_id). The repository must see its own
    earlier write, so the client gets 202 once and the task is enqueued, not a 500 and an orphan."""
    args = [*FAST, "--set", "PENDING_GRACE_SECONDS=2"]
    with (
        moto_server() as upstream,
        FaultProxy(upstream) as proxy,
        running(tmp_path, endpoint=proxy.url, args=args) as stack,
    ):
        table = stack.state["physical"]["TasksTable"]["Ref"]
        writes = {"PutItem", "TransactWriteItems"}
        with stack.client() as client:
            # With an Idempotency-Key the retried write finds its own idempotency record: accepted, run once.
            proxy.inject(
                Fault("dynamodb", writes, {table}, 500, "InternalServerError", after_forward=True, remaining=1)
            )
            keyed = {"name": "sum", "parameters": {"a": 1, "b": 2}}
            answer = client.post("/api/tasks", json=keyed, headers={"Idempotency-Key": f"lost-{uuid.uuid4().hex}"})
            assert answer.status_code == 202, answer.text
            first = answer.json()["task_id"]
            assert wait_terminal(client, [first], 20)[first]["result"]["result"] == 3

            # Without one, the stored task must be reported accepted too (202), or not be stored at all.
            proxy.inject(
                Fault("dynamodb", writes, {table}, 500, "InternalServerError", after_forward=True, remaining=1)
            )
            answer = client.post("/api/tasks", json={"name": "sum", "parameters": {"a": 2, "b": 3}})
            stored = [
                i["task_id"]["S"] for i in stored_tasks(upstream, table) if not i["task_id"]["S"].startswith("idem#")
            ]
            orphans = sorted(set(stored) - {first})
            assert stored == [first] or answer.status_code == 202, (
                f"API answered {answer.status_code} {answer.text!r}, yet the task was stored: {orphans}"
            )


# ------------------------------------------------------------------------------ 7. runner killed
def test_runner_killed_and_restarted_finishes_every_accepted_task(tmp_path: Path) -> None:
    args = [*FAST, "--set", "PENDING_GRACE_SECONDS=2"]
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    with moto_server() as endpoint:
        ids: dict[str, float] = {}
        with running(tmp_path / "first", endpoint=endpoint, prefix=prefix, args=args) as first:
            table = first.state["physical"]["TasksTable"]["Ref"]
            with first.client() as client:
                for i in range(30):
                    seconds = 1 + i % 2
                    ids[submit(client, {"name": "sleep", "parameters": {"seconds": seconds}, "timeout_seconds": 5})] = (
                        seconds
                    )
                poll(
                    lambda: any(
                        t["status"] == "RUNNING"
                        for t in client.get("/api/tasks", params={"limit": 100}).json()["tasks"]
                    ),
                    20,
                    message="a task RUNNING",
                )
            tree = descendants(first.proc.pid)
            assert len(tree) >= 6, tree
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            orphans = wait_gone(tree, 5)  # PR_SET_PDEATHSIG: they get SIGTERM at once
            assert not orphans, f"processes outlived the runner: {[(p.pid, p.cmdline) for p in orphans]}"
        at_kill = {
            i["task_id"]["S"]: i["status"]["S"] for i in stored_tasks(endpoint, table) if i["task_id"]["S"] in ids
        }
        unfinished = [t for t, s in at_kill.items() if s not in TERMINAL]
        assert len(at_kill) == len(ids)
        assert unfinished, "every task had finished before the kill; nothing was tested"

        restarted = time.monotonic()
        with (
            running(tmp_path / "second", endpoint=endpoint, prefix=prefix, args=args) as second,
            second.client() as client,
        ):
            states = wait_terminal(client, list(ids), 90)
            recovery = time.monotonic() - restarted
        for task_id, seconds in ids.items():
            assert states[task_id]["status"] == "COMPLETED", states[task_id]
            assert states[task_id]["result"]["slept_seconds"] == seconds
            # a claim lost with the runner costs one attempt; nothing else runs twice
            expected = {"RUNNING": 2, "PENDING": 1}.get(at_kill[task_id], states[task_id]["attempts"])
            assert states[task_id]["attempts"] == expected, (at_kill[task_id], states[task_id])
        counts = {s: list(at_kill.values()).count(s) for s in sorted(set(at_kill.values()))}
        print(f"at kill: {counts}; all {len(ids)} COMPLETED {recovery:.1f} s after the restart")
