"""Billed AWS requests per task, counted over real flows run in-process on moto: the API
handler (through Mangum), the SQS event source mapping's receive/delete, the worker, the
notifier and the stream app, with a botocore hook on every client that counts each call and
the DynamoDB capacity units it consumes (item sizes and index updates as DynamoDB bills them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_YmVuY2htYXJrLXJlcXVlc3QtY291bnRpbmc="
REGION = "us-east-1"
ESM = "event source mapping"
KB = 1024


# ---------------------------------------------------------------------------- item sizes
def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one DynamoDB attribute value, by DynamoDB's item-size rules."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: x}) for x in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_size(v) for k, v in data.items())
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


@dataclasses.dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TableSpec:
    logical: str
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]

    def projected(self, index: Index, item: dict[str, Any]) -> dict[str, Any]:
        if index.projection == "ALL":
            return item
        names = {*self.keys, *index.keys, *index.include}
        return {k: v for k, v in item.items() if k in names}

    def write_units(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[float, dict[str, float]]:
        """WRU of one write to the table and, separately, to each index it touches: an
        item's size rounded up to 1 KB (the larger of before and after); an index pays a put
        when an item enters it, a delete when it leaves, both when its key changes, and an
        update when only projected attributes change."""
        base = float(max(1, math.ceil(max(item_size(old), item_size(new)) / KB)))
        per_index: dict[str, float] = {}
        for index in self.indexes:
            was = old is not None and all(k in old for k in index.keys)
            now = new is not None and all(k in new for k in index.keys)
            units = 0.0

            def size(item: dict[str, Any], index: Index = index) -> float:
                return float(max(1, math.ceil(item_size(self.projected(index, item)) / KB)))

            if was and now:
                assert old is not None and new is not None
                if any(old[k] != new[k] for k in index.keys):
                    units = size(old) + size(new)
                elif self.projected(index, old) != self.projected(index, new):
                    units = max(size(old), size(new))
            elif now:
                assert new is not None
                units = size(new)
            elif was:
                assert old is not None
                units = size(old)
            if units:
                per_index[index.name] = units
        return base, per_index


def table_specs(template: dict[str, Any], prefix: str) -> dict[str, TableSpec]:
    """Physical table name -> its keys and indexes, from template.yaml."""
    from infra.local.provision import physical_name
    from infra.local.template import resources_of

    specs = {}
    for logical, res in resources_of(template, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        indexes = tuple(
            Index(
                g["IndexName"],
                tuple(k["AttributeName"] for k in g["KeySchema"]),
                g["Projection"]["ProjectionType"],
                tuple(g["Projection"].get("NonKeyAttributes", ())),
            )
            for g in props.get("GlobalSecondaryIndexes", [])
        )
        specs[physical_name(logical, prefix)] = TableSpec(
            logical, tuple(k["AttributeName"] for k in props["KeySchema"]), indexes
        )
    return specs


# ---------------------------------------------------------------------------- the meter
@dataclasses.dataclass
class Call:
    actor: str
    service: str
    operation: str
    table: str = ""
    wru: float = 0.0
    gsi_wru: float = 0.0
    rru: float = 0.0
    ok: bool = True
    seconds: float = 0.0  # the call's round trip (to moto, in this process)
    indexes: dict[str, float] = dataclasses.field(default_factory=dict)
    # a write's item before and after it (what bench/hotkeys.py reads the index keys from)
    old_item: dict[str, Any] | None = None
    new_item: dict[str, Any] | None = None


class Meter:
    """Counts every AWS call of the clients it is attached to, with the calling function."""

    WRITES = ("PutItem", "UpdateItem", "DeleteItem")

    def __init__(self, tables: dict[str, TableSpec], peek: Any) -> None:
        self.tables = tables
        self._peek = peek  # an uncounted client: reads items before and after a write
        self.actor = "setup"
        self.enabled = False
        self.calls: list[Call] = []
        self.overhead = 0.0  # seconds spent in the meter's own reads, taken off handler durations
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)
        return client

    @contextlib.contextmanager
    def acting(self, actor: str) -> Iterator[None]:
        previous, self.actor = self.actor, actor
        try:
            yield
        finally:
            self.actor = previous

    def _key(self, table: TableSpec, params: dict[str, Any]) -> dict[str, Any] | None:
        if "Key" in params:
            key: dict[str, Any] = params["Key"]
            return key
        item = params.get("Item") or {}
        return {k: item[k] for k in table.keys if k in item} or None

    def _peek_item(self, table_name: str, key: dict[str, Any] | None) -> dict[str, Any] | None:
        if key is None:
            return None
        found: dict[str, Any] | None = self._peek.get_item(TableName=table_name, Key=key, ConsistentRead=True).get(
            "Item"
        )
        return found

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        context["bench_params"] = params
        table = self.tables.get(params.get("TableName", ""))
        if model.service_model.service_name == "dynamodb" and model.name in self.WRITES and table is not None:
            started = time.perf_counter()
            context["bench_old"] = self._peek_item(params["TableName"], self._key(table, params))
            with self._lock:
                self.overhead += time.perf_counter() - started
        context["bench_started"] = time.perf_counter()

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], http_response: Any, **_: Any) -> None:
        if not self.enabled:
            return
        service = model.service_model.service_name
        call = Call(self.actor, service, model.name, ok=http_response.status_code < 300)
        call.seconds = time.perf_counter() - context.get("bench_started", time.perf_counter())
        params = context.get("bench_params") or {}
        if service == "dynamodb":
            name = params.get("TableName", "")
            table = self.tables.get(name)
            call.table = table.logical if table else name
            if model.name in self.WRITES and table is not None:
                started = time.perf_counter()
                old = context.get("bench_old")
                new = self._peek_item(name, self._key(table, params)) if call.ok else old
                with self._lock:
                    self.overhead += time.perf_counter() - started
                base, per_index = table.write_units(old, new)
                call.wru, call.gsi_wru, call.indexes = base, sum(per_index.values()), per_index
                call.old_item, call.new_item = old, new
            elif model.name == "GetItem":
                units = max(1, math.ceil(item_size(parsed.get("Item")) / (4 * KB)))
                call.rru = units if params.get("ConsistentRead") else units / 2
            elif model.name in ("Query", "Scan"):
                units = max(1, math.ceil(sum(item_size(i) for i in parsed.get("Items", [])) / (4 * KB)))
                call.rru = units if params.get("ConsistentRead") else units / 2
        with self._lock:
            self.calls.append(call)

    def reset(self) -> None:
        with self._lock:
            self.calls = []


class MeteredClients:
    """What build_services expects of its clients, each one counted by the meter."""

    def __init__(self, session: Any, meter: Meter) -> None:
        self._session = session
        self._meter = meter
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._meter.attach(self._session.client(service, region_name=REGION))
        return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")


class LambdaContext:
    """A fresh invocation of ``name``: its whole timeout (template.yaml's) remains."""

    def __init__(self, name: str, memory: int, timeout: int) -> None:
        self._timeout_ms = timeout * 1000
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.aws_request_id = "bench"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


class Receiver:
    """An HTTP server on 127.0.0.1 that accepts callbacks."""

    def __init__(self) -> None:
        self.count = 0

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


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


# ---------------------------------------------------------------------------- the flows
@dataclasses.dataclass
class FlowResult:
    name: str
    tasks: int
    calls: list[Call]
    durations_ms: dict[str, list[float]]  # function -> one entry per invocation
    invocations: dict[str, int]
    item_bytes: int = 0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def per_task(self) -> dict[str, float]:
        """'<service> <operation>' -> calls per task."""
        counts = Counter(f"{c.service} {c.operation}" for c in self.calls)
        return {k: round(v / self.tasks, 3) for k, v in sorted(counts.items())}

    def per_task_by_actor(self) -> dict[str, dict[str, float]]:
        out: dict[str, Counter[str]] = {}
        for c in self.calls:
            out.setdefault(c.actor, Counter())[f"{c.service} {c.operation}"] += 1
        return {a: {k: round(v / self.tasks, 3) for k, v in sorted(cnt.items())} for a, cnt in sorted(out.items())}

    def requests_per_task(self, *services: str) -> float:
        return sum(1 for c in self.calls if c.service in services) / self.tasks

    def call_ms(self) -> dict[str, float]:
        """Milliseconds each function spent waiting on AWS calls (moto, in this process)."""
        out: dict[str, float] = {}
        for c in self.calls:
            out[c.actor] = out.get(c.actor, 0.0) + c.seconds * 1000
        return {k: round(v, 1) for k, v in out.items()}

    def index_units_per_task(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.calls:
            for name, units in c.indexes.items():
                key = f"{c.table}/{name}"
                out[key] = out.get(key, 0.0) + units
        return {k: round(v / self.tasks, 3) for k, v in sorted(out.items())}

    def units_per_task(self) -> dict[str, float]:
        return {
            "wru_table": sum(c.wru for c in self.calls) / self.tasks,
            "wru_indexes": sum(c.gsi_wru for c in self.calls) / self.tasks,
            "rru": sum(c.rru for c in self.calls) / self.tasks,
        }


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
                with Receiver() as receiver:
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
            context: Any = LambdaContext("ApiFunction", self.memory["ApiFunction"], self.timeouts["ApiFunction"])
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
                context = LambdaContext(function, self.memory[function], self.timeouts[function])
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
                "events": text.count("\ndata: ") + text.startswith("data: "),
            },
        )
