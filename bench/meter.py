"""The counting hooks: a botocore hook on every client that records each AWS call with the
calling function and the DynamoDB capacity units it consumes, and what a flow counted, per task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .capacity import KB, TableSpec, item_size

REGION = "us-east-1"


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
