"""Hot partition keys and index writes of the tasks table, from a real flow.

A flow of tasks runs through the product in-process on moto (bench/billing.py's Flows: the
API handler, the event source mapping, the worker), its every write metered with the item
before and after it. From those pairs: which partition key value of the table and of each
index every write touches, and the index write units per task. Then one second of the
design's load (10,000 tasks/s, one tenant at 5,000 of them, the others 10/s each over 500
tenants) is laid over the measured writes per task: the hottest partition key value of each
index in writes/s, against DynamoDB's ~1,000 writes/s per key value. The same writes viewed
in the layout before the shards (``by-owner`` and ``by-owner-status`` keyed by the owner and
projecting ALL, ``by-due`` under one key) give the comparison.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .billing import Flows, Index, TableSpec
from .cost import PRICES, scenario
from .report import Row, at_most, command

TOTAL_RATE = 10_000  # tasks/s overall
TENANT_RATE = 5_000  # tasks/s of the busiest tenant
OTHER_TENANTS = 500
KEY_LIMIT = 1_000  # writes/s a partition key value takes
WRITES = ("PutItem", "UpdateItem", "DeleteItem")
# The layout before the shards. Its claim also moved due_at to the lease (a by-due key
# change: 2 writes), which today's claim does not: added to the old view's by-due writes.
OLD_SPEC = TableSpec(
    "TasksTable",
    ("task_id",),
    (
        Index("by-owner", ("owner", "created_key"), "ALL"),
        Index("by-owner-status", ("owner", "status_key"), "ALL"),
        Index("by-due", ("sweep_pk", "due_at"), "KEYS_ONLY"),
    ),
)
OLD_CLAIM_DUE_MOVE = 2.0


def old_view(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """The item as the layout before the shards wrote it."""
    if item is None:
        return None
    out = {k: v for k, v in item.items() if k not in ("active_pk", "done_pk", "sweep_pk")}
    if "created_key" in item:
        out["status_key"] = {"S": f"{item['status']['S']}#{item['created_key']['S']}"}
    if "sweep_pk" in item:
        out["sweep_pk"] = {"S": "ACTIVE"}
    return out


def partition_writes(
    spec: TableSpec, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> Counter[tuple[str, str]]:
    """(index, partition key value) -> writes of one item write: a put where the item enters
    an index, a delete where it leaves, both where its key changes, one where a projected
    attribute changes; the table's own write on the item's key."""
    out: Counter[tuple[str, str]] = Counter()
    item = new or old or {}
    out[("table", item.get("task_id", {}).get("S", "?"))] += 1
    for index in spec.indexes:
        pk = index.keys[0]
        was = old is not None and all(k in old for k in index.keys)
        now = new is not None and all(k in new for k in index.keys)
        if was and now:
            assert old is not None and new is not None
            if any(old[k] != new[k] for k in index.keys):
                out[(index.name, old[pk]["S"])] += 1
                out[(index.name, new[pk]["S"])] += 1
            elif spec.projected(index, old) != spec.projected(index, new):
                out[(index.name, new[pk]["S"])] += 1
        elif now:
            assert new is not None
            out[(index.name, new[pk]["S"])] += 1
        elif was:
            assert old is not None
            out[(index.name, old[pk]["S"])] += 1
    return out


def per_task(
    spec: TableSpec, writes: Iterable[tuple[dict[str, Any] | None, dict[str, Any] | None]], tasks: int
) -> tuple[dict[str, float], dict[str, float], Counter[tuple[str, str]]]:
    """Writes per task and write units per task of each index (and the table), and the
    partition key values written."""
    counts: Counter[str] = Counter()
    units: dict[str, float] = {}
    keys: Counter[tuple[str, str]] = Counter()
    for old, new in writes:
        for (index, value), n in partition_writes(spec, old, new).items():
            counts[index] += n
            keys[(index, value)] += n
        base, per_index = spec.write_units(old, new)
        units["table"] = units.get("table", 0.0) + base
        for index, u in per_index.items():
            units[index] = units.get(index, 0.0) + u
    return (
        {k: round(v / tasks, 3) for k, v in counts.items()},
        {k: round(v / tasks, 3) for k, v in units.items()},
        keys,
    )


def one_second(seed: int = 7) -> list[tuple[str, str]]:
    """(owner, task id) of one second of the design's load."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(TOTAL_RATE)]
    owners = ["big"] * TENANT_RATE + [f"tenant-{i % OTHER_TENANTS}" for i in range(TOTAL_RATE - TENANT_RATE)]
    return list(zip(owners, ids, strict=True))


def hottest_new(writes: dict[str, float], load: list[tuple[str, str]]) -> dict[str, tuple[str, float]]:
    """The busiest key value of each index under ``load`` (writes/s): the codec's key of each
    task, times the index's measured writes per task."""
    from taskrunner.adapters.dynamodb_shards import due_pk, owner_pk

    keyed: dict[str, Callable[[str, str], str]] = {
        "by-owner-active": owner_pk,
        "by-owner-done": owner_pk,
        "by-due": lambda _owner, task_id: due_pk(task_id),
    }
    out = {}
    for index, key in keyed.items():
        per_key = Counter(key(owner, task_id) for owner, task_id in load)
        value, n = per_key.most_common(1)[0]
        out[index] = (value, n * writes.get(index, 0.0))
    out["table"] = ("a task's id", writes.get("table", 0.0))  # a task's writes, over its seconds
    return out


def hottest_old(writes: dict[str, float]) -> dict[str, tuple[str, float]]:
    return {
        "by-owner": ("big (the tenant)", TENANT_RATE * writes.get("by-owner", 0.0)),
        "by-owner-status": ("big (the tenant)", TENANT_RATE * writes.get("by-owner-status", 0.0)),
        "by-due": ("ACTIVE", TOTAL_RATE * writes.get("by-due", 0.0)),
        "table": ("a task's id", writes.get("table", 0.0)),
    }


def _check_keys(keys: Counter[tuple[str, str]], calls: list[Any]) -> int:
    """Every partition key value the flow wrote is the codec's: owner#shard, ACTIVE#shard."""
    from taskrunner.adapters.dynamodb_shards import due_pk, owner_pk

    expected: set[tuple[str, str]] = set()
    for c in calls:
        item = c.new_item or c.old_item or {}
        if "owner" in item:
            task_id, owner = item["task_id"]["S"], item["owner"]["S"]
            expected |= {("by-owner-active", owner_pk(owner, task_id)), ("by-owner-done", owner_pk(owner, task_id))}
            expected.add(("by-due", due_pk(task_id)))
    wrong = [k for k in keys if k[0] != "table" and k not in expected]
    if wrong:
        raise AssertionError(f"index keys not made by the codec: {wrong[:5]}")
    return len({v for i, v in keys if i != "table"})


def bench_hotkeys(tasks: int, details: dict[str, Any], quick: bool) -> list[Row]:
    cmd = command("hotkeys", quick)
    flows = Flows(tasks)
    (flow,) = flows.run(only_tasks=True)
    spec = next(t for t in flows.meter.tables.values() if t.logical == "TasksTable")
    calls = [c for c in flow.calls if c.table == "TasksTable" and c.operation in WRITES and c.ok]
    pairs = [(c.old_item, c.new_item) for c in calls]
    new_writes, new_units, new_keys = per_task(spec, pairs, flow.tasks)
    distinct = _check_keys(new_keys, calls)
    old_writes, old_units, _ = per_task(OLD_SPEC, [(old_view(a), old_view(b)) for a, b in pairs], flow.tasks)
    old_writes["by-due"] = old_writes.get("by-due", 0.0) + OLD_CLAIM_DUE_MOVE
    old_units["by-due"] = old_units.get("by-due", 0.0) + OLD_CLAIM_DUE_MOVE
    hot_new = hottest_new(new_writes, one_second())
    hot_old = hottest_old(old_writes)
    index_new = sum(v for k, v in new_units.items() if k != "table")
    index_old = sum(v for k, v in old_units.items() if k != "table")
    s = scenario("no callback", [flow], flows.memory)
    cost = s.cost_per_million()
    wru_price = PRICES["dynamodb_per_million_wru"]
    old_total = cost["total"] + (index_old - s.wru_indexes) * wru_price
    floor = {
        "API Gateway": cost["API Gateway"],
        "Lambda requests": cost["Lambda requests"],
        "Lambda duration": cost["Lambda duration"],
        "SQS": cost["SQS"],
        "DynamoDB writes (table only)": round(s.wru * wru_price, 3),
        "DynamoDB reads": cost["DynamoDB reads"],
    }
    floor_total = round(sum(floor.values()), 2)
    details["hotkeys"] = {
        "tasks": flow.tasks,
        "load": {"tasks_per_second": TOTAL_RATE, "busiest_tenant": TENANT_RATE, "other_tenants": OTHER_TENANTS},
        "writes_per_task": {"sharded": new_writes, "before": old_writes},
        "wru_per_task": {"sharded": new_units, "before": old_units},
        "hottest_writes_per_second": {
            "sharded": {k: {"key": v[0], "writes_per_second": round(v[1])} for k, v in hot_new.items()},
            "before": {k: {"key": v[0], "writes_per_second": round(v[1])} for k, v in hot_old.items()},
        },
        "distinct_index_keys_in_flow": distinct,
        "cost_per_million": {"sharded": cost, "before_total": round(old_total, 2), "floor": floor},
        "floor_total": floor_total,
    }
    rows: list[Row] = []
    for index in ("by-owner-active", "by-owner-done", "by-due"):
        key, rate = hot_new[index]
        rows.append(
            Row(
                f"hotkeys.{index}",
                "8 hot keys",
                f"hottest {index} key value at {TOTAL_RATE:,} tasks/s (one tenant {TENANT_RATE:,}/s), writes/s",
                round(rate),
                "writes/s",
                f"<= {KEY_LIMIT:,}",
                at_most(rate, KEY_LIMIT),
                cmd,
                f"{key}: {new_writes.get(index, 0):g} writes per task measured",
            )
        )
    rows.append(
        Row(
            "hotkeys.before",
            "8 hot keys",
            "the same load in the layout before the shards, hottest key value per index",
            ", ".join(f"{i} {k}: {round(r):,}/s" for i, (k, r) in hot_old.items() if i != "table"),
            "",
            "",
            None,
            cmd,
            f"writes per task {', '.join(f'{i} {w:g}' for i, w in old_writes.items() if i != 'table')} "
            f"(by-due includes the old claim's due_at move, {OLD_CLAIM_DUE_MOVE:g})",
        )
    )
    rows.append(
        Row(
            "hotkeys.index_wru",
            "8 hot keys",
            "index write units per task, sharded (before)",
            f"{index_new:g} ({index_old:g})",
            "",
            "",
            None,
            cmd,
            ", ".join(f"{k} {v:g}" for k, v in sorted(new_units.items())),
        )
    )
    rows.append(
        Row(
            "hotkeys.cost",
            "8 hot keys",
            "no callback: $ per million tasks, sharded (before)",
            f"${cost['total']:.2f} (${old_total:.2f})",
            "",
            "",
            None,
            cmd,
            f"floor with no index writes ${floor_total:.2f}: "
            + ", ".join(f"{k} ${v:.2f}" for k, v in floor.items())
            + f"; {_to_reach(floor, 4.0)}",
        )
    )
    return rows


def _to_reach(floor: dict[str, float], target: float) -> str:
    """What a design at ``target`` $ per million would have to give up, from the floor."""
    fixed = floor["API Gateway"] + floor["Lambda requests"] + floor["SQS"] + floor["DynamoDB writes (table only)"]
    left = target - fixed
    if left >= floor["Lambda duration"]:
        return f"${target:g} is within reach with index writes of at most ${left - floor['Lambda duration']:.2f}"
    return (
        f"${target:g} needs Lambda duration under ${max(left, 0):.2f} (measured here against in-process moto: "
        f"${floor['Lambda duration']:.2f}) with no index writes, or fewer table writes (the claim and the outcome "
        f"in one write for a short task: 1 WRU, $0.63, less)"
    )
