"""Lambda's and SQS's limits, as the local runner applies them: reserved concurrency, the 6 MB
synchronous payload (request and response), an event source mapping's BatchSize and
MaximumBatchingWindowInSeconds, and the queue's maximum message size."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.esm import SqsEventSource
from infra.local.front import Front
from infra.local.pool import SYNC_PAYLOAD_LIMIT, FunctionPool
from infra.local.runtime import pool_size
from infra.local.template import FunctionSpec, Resolver

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _close_a_leftover_event_loop():
    """Mangum (test_flow drives its handler) leaves an event loop set and open; asyncio.run here
    would unset it and the collector would report its sockets in whichever test runs next."""
    loop = getattr(asyncio.get_event_loop_policy()._local, "_loop", None)  # type: ignore[attr-defined]
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()


def test_6mb_limit_is_lambdas():
    assert SYNC_PAYLOAD_LIMIT == 6 * MB


def _pool(handler: str, *, size: int = 1, payload_limit: int | None = None, tmp: Path) -> FunctionPool:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    return FunctionPool(
        "TestFunction",
        f"tests.support.handlers.{handler}",
        env,
        timeout=30,
        memory=128,
        size=size,
        cwd=str(ROOT),
        python=sys.executable,
        log_path=str(tmp / "TestFunction.log"),
        payload_limit=payload_limit,
    )


def _spec(**props: Any) -> FunctionSpec:
    events = {"Q": {"Type": "SQS", "Properties": {"Queue": "arn", "ScalingConfig": {"MaximumConcurrency": 10}}}}
    return FunctionSpec("F", "h.handler", 30, 128, {}, events, reserved_concurrency=props.get("reserved"))


def test_reserved_concurrency_caps_the_pool():
    resolver = Resolver(parameters={"Reserved": "2"}, physical={})
    assert pool_size(_spec(), resolver, 8) == 8
    assert pool_size(_spec(reserved=3), resolver, 8) == 3
    assert pool_size(_spec(reserved={"Ref": "Reserved"}), resolver, 8) == 2


def test_pool_never_runs_more_than_its_size_at_once(tmp_path):
    async def run() -> tuple[int, int]:
        pool = _pool("sleep", size=2, tmp=tmp_path)
        try:
            results = await asyncio.gather(*(pool.invoke({"seconds": 0.3}) for _ in range(6)))
        finally:
            await pool.close()
        return pool.peak_active, len({r["pid"] for r in results})

    peak, environments = asyncio.run(run())
    assert peak == 2
    assert environments <= 2


def _front_request(tmp: Path, method: str, path: str, body: bytes = b"") -> httpx.Response:
    async def run() -> httpx.Response:
        pool = _pool("http", payload_limit=SYNC_PAYLOAD_LIMIT, tmp=tmp)
        transport = httpx.ASGITransport(app=Front(pool, None))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
                return await client.request(method, path, content=body, timeout=60)
        finally:
            await pool.close()

    return asyncio.run(run())


def test_request_over_6mb_is_413_before_the_function_runs(tmp_path):
    answer = _front_request(tmp_path, "POST", "/api/tasks", b"y" * (6 * MB + 1))
    assert answer.status_code == 413
    assert answer.json() == {"message": "Request Entity Too Large"}
    assert _front_request(tmp_path, "POST", "/api/tasks", b"y" * (5 * MB)).status_code == 200


def test_response_over_6mb_is_502(tmp_path):
    assert _front_request(tmp_path, "GET", f"/big?size={6 * MB + 1}").status_code == 502
    ok = _front_request(tmp_path, "GET", f"/big?size={5 * MB}")
    assert ok.status_code == 200 and len(ok.content) == 5 * MB


class _Recorder:
    """Stands in for a function pool: records each batch it is invoked with."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.batches.append([r["body"] for r in event["Records"]])
        return {"batchItemFailures": []}


def _drive(aws, *, batch_size: int, window: float, sends: int, gap: float) -> list[list[str]]:
    sqs = aws.session.client("sqs")
    url = sqs.create_queue(QueueName=f"esm-{batch_size}-{window}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    recorder = _Recorder()
    source = SqsEventSource(
        "test", sqs, url, arn, recorder, batch_size=batch_size, batching_window=window, concurrency=1, wait_seconds=0
    )  # type: ignore[arg-type]

    async def run() -> None:
        polling = asyncio.create_task(source.run())
        for i in range(sends):
            await asyncio.to_thread(sqs.send_message, QueueUrl=url, MessageBody=str(i))
            await asyncio.sleep(gap)
        deadline = time.monotonic() + 10
        while sum(len(b) for b in recorder.batches) < sends and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        source.stop()
        await asyncio.wait_for(polling, 5)

    asyncio.run(run())
    assert sorted(int(b) for batch in recorder.batches for b in batch) == list(range(sends))
    return recorder.batches


def test_batching_window_gathers_messages_sent_apart(aws):
    batches = _drive(aws, batch_size=4, window=2, sends=4, gap=0.2)
    assert [len(b) for b in batches] == [4]


def test_without_a_window_each_poll_is_invoked_at_once(aws):
    batches = _drive(aws, batch_size=4, window=0, sends=4, gap=0.3)
    assert len(batches) >= 3


def test_batch_size_bounds_every_batch(aws):
    batches = _drive(aws, batch_size=3, window=1, sends=7, gap=0)
    assert all(len(b) <= 3 for b in batches) and len(batches) >= 3


def test_the_endpoint_rejects_messages_over_the_queues_maximum_size(aws):
    sqs = aws.session.client("sqs")
    url = aws.ref("TasksQueue")
    size = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"][
            "MaximumMessageSize"
        ]
    )
    assert size == 1024 * 1024  # SQS's default and maximum since 2025 (was 256 KiB)
    sqs.send_message(QueueUrl=url, MessageBody="m" * size)
    with pytest.raises(sqs.exceptions.ClientError, match="shorter than"):
        sqs.send_message(QueueUrl=url, MessageBody="m" * (size + 1))
    small = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": str(256 * 1024)})["QueueUrl"]
    sqs.send_message(QueueUrl=small, MessageBody="m" * 256 * 1024)
    with pytest.raises(sqs.exceptions.ClientError, match="shorter than"):
        sqs.send_message(QueueUrl=small, MessageBody="m" * (256 * 1024 + 1))
