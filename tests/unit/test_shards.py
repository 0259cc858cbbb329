"""The sharded index keys of the tasks table: stable, uniform, and written only by the put and
the terminal write (a claim, progress, checkpoint or lease write touches no index)."""

import random
import uuid
from collections import Counter

from taskrunner.adapters.dynamodb_codec import task_to_item
from taskrunner.adapters.dynamodb_shards import DUE_SHARDS, OWNER_SHARDS, due_pk, owner_pk, shard_of
from taskrunner.adapters.dynamodb_tasks import DynamoDbTaskRepository
from taskrunner.domain.models import ACTIVE_STATUSES, Expect, Progress, TaskStatus

from tests.unit.factories import a_task

INDEX_KEYS = {"active_pk", "done_pk", "sweep_pk", "created_key", "due_at"}
PROJECTED = {"name", "status"}  # by-owner-active includes name, by-owner-done status and name


def test_a_task_has_one_shard_for_ever():
    ids = [str(uuid.uuid4()) for _ in range(100)]
    assert [shard_of(t, 16) for t in ids] == [shard_of(t, 16) for t in ids]
    # blake2b of the id, 4 bytes, modulo: fixed by the item layout (no process-salted hash())
    assert shard_of("00000000-0000-4000-8000-000000000000", 16) == shard_of("00000000-0000-4000-8000-000000000000", 16)
    assert owner_pk("acme", "t-1") == f"acme#{shard_of('t-1', OWNER_SHARDS):02d}"
    assert due_pk("t-1") == f"ACTIVE#{shard_of('t-1', DUE_SHARDS):02d}"


def test_100k_ids_spread_within_a_few_percent_of_uniform():
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(100_000)]
    for shards in (OWNER_SHARDS, DUE_SHARDS):
        counts = Counter(shard_of(t, shards) for t in ids)
        assert len(counts) == shards
        even = len(ids) / shards
        # what a uniform draw gives: within 4 standard deviations of even (sqrt(even)), i.e.
        # 5% for 16 shards (6,250 ids each), 10% for 64 (1,562 each)
        spread = 4 * even**0.5
        assert max(counts.values()) <= even + spread and min(counts.values()) >= even - spread, (shards, counts)
        assert max(counts.values()) / even < {OWNER_SHARDS: 1.05, DUE_SHARDS: 1.10}[shards]


def test_the_put_writes_the_active_keys_and_a_terminal_item_the_done_key():
    task = a_task(task_id="t-1", owner="acme", due_at="2026-11-19T09:02:00.000Z")
    item = task_to_item(task)
    assert item["active_pk"]["S"] == owner_pk("acme", "t-1") and item["sweep_pk"]["S"] == due_pk("t-1")
    assert item["created_key"]["S"] == f"{task.created_at}#t-1"
    assert "done_pk" not in item and "status_key" not in item
    done = task_to_item(a_task(task_id="t-1", owner="acme", status=TaskStatus.COMPLETED))
    assert done["done_pk"]["S"] == owner_pk("acme", "t-1")
    assert "active_pk" not in done and "sweep_pk" not in done


class Recorder:
    """A DynamoDB client that records the UpdateItem it gets and answers it."""

    def __init__(self):
        self.calls = []

    def update_item(self, **kwargs):
        self.calls.append(kwargs)
        return {"Attributes": {}}


def attributes_written(call):
    """The attribute names an UpdateItem sets or removes."""
    names = call["ExpressionAttributeNames"]
    expression = call["UpdateExpression"]
    return {names[token.strip(",=()")] for token in expression.split() if token.strip(",=()") in names}


def update(changes, **kw):
    client = Recorder()
    repo = DynamoDbTaskRepository(client, "t")
    task = a_task(task_id="t-1", owner="acme")
    repo.update(task.ref, changes, Expect(frozenset(ACTIVE_STATUSES)), current=task, **kw)
    (call,) = client.calls
    return call, attributes_written(call)


def test_claim_progress_checkpoint_and_lease_writes_touch_no_index():
    lease = "2026-11-19T09:05:00.000Z"
    writes = {
        "claim": (
            {
                "status": TaskStatus.RUNNING,
                "started_at": "2026-11-19T09:00:01.000Z",
                "attempt_started_at": "2026-11-19T09:00:01.000Z",
                "next_attempt_at": None,
                "updated_at": "2026-11-19T09:00:01.000Z",
                "lease_expires_at": lease,
                "handed_over_at": None,
            },
            {"increment_attempts": True, "increment_segments": True},
        ),
        "progress": ({"progress": Progress(50.0, "half"), "updated_at": lease}, {}),
        "checkpoint": ({"checkpoint": {"next": 3}, "checkpointed_at": lease, "updated_at": lease}, {}),
        "lease": ({"lease_expires_at": lease, "updated_at": lease}, {}),
        "retry": ({"status": TaskStatus.RETRYING, "next_attempt_at": lease, "updated_at": lease}, {}),
    }
    for what, (changes, kw) in writes.items():
        _, written = update(changes, **kw)
        assert not written & INDEX_KEYS, (what, written & INDEX_KEYS)
        # status is projected into by-owner-done only, which an active task is not in
        assert not written & (PROJECTED - {"status"}), what


def test_the_terminal_write_moves_the_task_from_the_active_indexes_to_done():
    call, written = update({"status": TaskStatus.COMPLETED, "result": {"ok": 1}, "due_at": None})
    assert {"active_pk", "sweep_pk", "done_pk"} <= written
    expression = call["UpdateExpression"]
    removed = expression.split(" REMOVE ")[1]
    names = call["ExpressionAttributeNames"]
    assert {names[a.strip(", ")] for a in removed.split(",")} >= {"active_pk", "sweep_pk", "due_at"}
    assert call["ExpressionAttributeValues"][":done_pk"] == {"S": owner_pk("acme", "t-1")}
