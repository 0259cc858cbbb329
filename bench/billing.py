"""Billed AWS requests per task, counted over real flows run in-process on moto: the API
handler (through Mangum), the SQS event source mapping's receive/delete, the worker, the
notifier and the stream app, with a botocore hook on every client that counts each call and
the DynamoDB capacity units it consumes (item sizes and index updates as DynamoDB bills them).

The flows are here; the counting hooks are in bench/meter.py, the capacity arithmetic in
bench/capacity.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from taskrunner_cli.sse import raw_events

from infra.local.child import LambdaContext
from tests.support.receiver import CallbackReceiver

from .capacity import Index, TableSpec, attribute_size, item_size, table_specs
from .meter import REGION, Call, FlowResult, Meter, MeteredClients

__all__ = [
    "ESM",
    "REGION",
    "SECRET",
    "Call",
    "FlowResult",
    "Flows",
    "Index",
    "Meter",
    "MeteredClients",
    "TableSpec",
    "attribute_size",
    "item_size",
    "table_specs",
]

SECRET = "whsec_YmVuY2htYXJrLXJlcXVlc3QtY291bnRpbmc="
ESM = "event source mapping"


def invocation_context(name: str, memory: int, timeout: int) -> LambdaContext:
    """A fresh invocation of ``name``: its whole timeout (template.yaml's) ahead of it."""
    return LambdaContext(name, memory, "bench", (time.time() + timeout) * 1000)


@contextlib.contextmanager
def _environment(values: dict[str, str], remove: tuple[str, ...]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*values, *remove)}
    os.environ.update(values)
    for k in remove:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _current_loop() -> asyncio.AbstractEventLoop | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The functions' logs and metrics (JSON lines on stdout/stderr) out of the way."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


class Flows:
    """A moto account with template.yaml's tables and queues, the functions' services wired to
    metered clients, and the flows to count."""

    def __init__(
        self, tasks: int, *, stream_scale: float = 10.0, stream_seconds: float = 30.0, stream_poll: float = 0.5
    ) -> None:
        self.tasks = tasks
        self.stream_scale = stream_scale
        self.stream_seconds = stream_seconds
        self.stream_poll = stream_poll

    def run(self, *, only_tasks: bool = False) -> list[FlowResult]:
        """The three flows (no callback, with callback, a 30 s stream); ``only_tasks``: the
        first alone."""
        import boto3
        from moto import mock_aws

        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "taskrunner-bench",
        }
        # Mangum runs the app on the thread's current event loop: one of ours, closed at the end,
        # and the thread's own loop (if it had one) put back.
        previous = _current_loop()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            with _environment(env, ("AWS_ENDPOINT_URL", "AWS_PROFILE")), _quiet(), mock_aws():
                self._setup(boto3.session.Session(region_name=REGION))
                with CallbackReceiver() as receiver:
                    self._warm(receiver.url)
                    results = [self._tasks_flow("no callback", None)]
                    if not only_tasks:
                        results.append(self._tasks_flow("with callback", receiver.url))
                        results.append(self._stream_flow())
        finally:
            asyncio.set_event_loop(previous)
            self.loop.close()
        return results

    # -- set-up ------------------------------------------------------------------------
    def _setup(self, session: Any) -> None:
        from mangum import Mangum
        from taskrunner.bootstrap import build_services
        from taskrunner.entrypoints.api import create_app

        from infra.local.assemble import assemble
        from infra.local.template import functions

        prefix = "bench"
        assembly = assemble(session, None, prefix=prefix)
        template, resolver = assembly.template, assembly.resolver
        self.physical = resolver.physical
        self.memory = {name: spec.memory for name, spec in functions(template).items()}
        self.timeouts = {name: spec.timeout for name, spec in functions(template).items()}
        self.batch_sizes = {
            name: {
                str(resolver.resolve(p["Queue"])): int(p.get("BatchSize", 10)) for p in spec.events_of("SQS").values()
            }
            for name, spec in functions(template).items()
        }
        self.meter = Meter(table_specs(template, prefix), session.client("dynamodb"))

        self.api_key = assembly.seed_key(session, None, "bench", "bench")
        self.settings = assembly.settings(
            region=REGION,
            allow_loopback_egress=True,
            signing_secret=SECRET,
            auth_required=True,
            docs_enabled=False,
        )
        self.clients = MeteredClients(session, self.meter)
        self.services = build_services(self.settings, clients=self.clients)
        self.api = Mangum(create_app(lambda: self.services, docs=False), lifespan="off")
        self.esm_sqs = self.meter.attach(session.client("sqs", region_name=REGION))

    # -- the pieces --------------------------------------------------------------------
    @contextlib.contextmanager
    def _timed(self, durations: list[float]) -> Iterator[None]:
        """A handler invocation's milliseconds, without the meter's own reads."""
        overhead = self.meter.overhead
        started = time.perf_counter()
        yield
        durations.append((time.perf_counter() - started - (self.meter.overhead - overhead)) * 1000)

    def _submit(self, body: dict[str, Any], durations: list[float]) -> dict[str, Any]:
        from infra.local.front import http_api_event

        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "host": "localhost",
            "x-api-key": self.api_key,
        }
        event = http_api_event("POST", "/api/tasks", "", headers, json.dumps(body).encode(), "127.0.0.1")
        with self.meter.acting("ApiFunction"), self._timed(durations):
            context: Any = invocation_context("ApiFunction", self.memory["ApiFunction"], self.timeouts["ApiFunction"])
            answer = self.api(event, context)
        if answer["statusCode"] != 202:
            raise RuntimeError(f"submit answered {answer['statusCode']}: {answer.get('body')}")
        accepted: dict[str, Any] = json.loads(answer["body"])
        return accepted

    def _drain(
        self,
        logical_queue: str,
        function: str,
        process: Callable[..., dict[str, Any]],
        expected: int,
        durations: list[float],
    ) -> int:
        """Lambda's event source mapping: receive batches, invoke, delete what succeeded."""
        from infra.local.esm import sqs_record

        url, arn = self.physical[logical_queue]["Ref"], self.physical[logical_queue]["Arn"]
        batch = self.batch_sizes[function].get(arn, 10)
        seen = batches = 0
        for _ in range(expected * 3 + 5):
            if seen >= expected:
                break
            with self.meter.acting(ESM):
                messages = self.esm_sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=batch, AttributeNames=["All"], MessageAttributeNames=["All"]
                ).get("Messages", [])
            if not messages:
                continue
            seen += len(messages)
            batches += 1
            event = {"Records": [sqs_record(m, arn, REGION) for m in messages]}
            with self.meter.acting(function), self._timed(durations):
                context = invocation_context(function, self.memory[function], self.timeouts[function])
                result = process(event, context, self.services)
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                with self.meter.acting(ESM):
                    self.esm_sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                    )
        if seen < expected:
            raise RuntimeError(f"{logical_queue}: {seen} of {expected} messages arrived")
        return batches

    def _warm(self, callback: str) -> None:
        """One task through every function first: the API key lookup (cached 60 s per
        environment) and other first-call work are not per task."""
        from taskrunner.entrypoints import notifier, worker

        self.meter.enabled = False
        self._submit({"name": "sum", "parameters": {"a": 1, "b": 2}, "callback_url": callback}, [])
        self._drain("TasksQueue", "WorkerFunction", worker.process_batch, 1, [])
        self._drain("CallbacksQueue", "NotifierFunction", notifier.process_batch, 1, [])

    def _tasks_flow(self, name: str, callback: str | None) -> FlowResult:
        from taskrunner.entrypoints import notifier, worker

        durations: dict[str, list[float]] = {"ApiFunction": [], "WorkerFunction": [], "NotifierFunction": []}
        invocations: dict[str, int] = {}
        self.meter.reset()
        self.meter.enabled = True
        ids = []
        try:
            for i in range(self.tasks):
                body: dict[str, Any] = {"name": "sum", "parameters": {"a": i, "b": 1}}
                if callback:
                    body["callback_url"] = callback
                ids.append(self._submit(body, durations["ApiFunction"])["task_id"])
            invocations["ApiFunction"] = self.tasks
            invocations["WorkerFunction"] = self._drain(
                "TasksQueue", "WorkerFunction", worker.process_batch, self.tasks, durations["WorkerFunction"]
            )
            if callback:
                invocations["NotifierFunction"] = self._drain(
                    "CallbacksQueue",
                    "NotifierFunction",
                    notifier.process_batch,
                    self.tasks,
                    durations["NotifierFunction"],
                )
        finally:
            self.meter.enabled = False
        for task_id in ids:
            task = self.services.repository.get(task_id)
            if (
                task is None
                or task.status.value != "COMPLETED"
                or (callback and (task.callback is None or task.callback.status.value != "DELIVERED"))
            ):
                raise RuntimeError(f"task {task_id} did not complete the flow: {task}")
        peek = self.meter._peek.get_item(
            TableName=self.settings.tasks_table_name, Key={"task_id": {"S": ids[-1]}}, ConsistentRead=True
        )["Item"]
        return FlowResult(
            name,
            self.tasks,
            list(self.meter.calls),
            {k: v for k, v in durations.items() if v},
            invocations,
            item_size(peek),
        )

    def _stream_flow(self) -> FlowResult:
        """One client following a task for ``stream_seconds`` (the task stays PENDING), run
        ``stream_scale`` times faster: poll interval and duration both divided by it."""
        import httpx
        from taskrunner.entrypoints.stream import create_stream_app

        accepted = self._submit({"name": "sum", "parameters": {"a": 1, "b": 1}}, [])
        fast = dataclasses.replace(
            self.settings,
            stream_poll_seconds=self.stream_poll / self.stream_scale,
            stream_max_seconds=self.stream_seconds / self.stream_scale,
            stream_heartbeat_seconds=5.0 / self.stream_scale,
        )
        from taskrunner.bootstrap import build_services

        services = build_services(fast, clients=self.clients)
        app = create_stream_app(lambda: services)

        async def follow() -> tuple[int, str]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://stream.local") as client:
                response = await client.get(
                    accepted["links"]["stream"], headers={"accept": "text/event-stream"}, timeout=60
                )
                return response.status_code, response.text

        self.meter.reset()
        self.meter.enabled = True
        try:
            with self.meter.acting("StreamFunction"):
                started = time.perf_counter()
                status, text = self.loop.run_until_complete(follow())
                elapsed = time.perf_counter() - started
        finally:
            self.meter.enabled = False
        if status != 200 or "time limit" not in text:
            raise RuntimeError(f"stream answered {status}: {text[:300]}")
        # the stream's own calls, per stream; the task flow adds to them
        return FlowResult(
            "stream",
            1,
            list(self.meter.calls),
            {"StreamFunction": [self.stream_seconds * 1000]},
            {"StreamFunction": 1},
            extra={
                "scaled_run_seconds": round(elapsed, 2),
                "scale": self.stream_scale,
                "events": sum(1 for _ in raw_events(text.splitlines())),
            },
        )
