"""What the embedded endpoint does that moto does not: AWS behaviours the product relies on.

- **DynamoDB Time to Live.** moto records a table's TimeToLiveSpecification but never deletes
  an item. ``TtlSweeper`` deletes, every ``every`` seconds, the items whose TTL attribute (a
  Number, epoch seconds) is in the past, as DynamoDB's TTL process does; AWS deletes them
  within a few days of expiry, here within ``every`` seconds (declared in exceptions.py).
- **SQS long polls that sleep.** moto's ReceiveMessage with WaitTimeSeconds wakes every second
  to look at the queue again; here a waiting receive sleeps until a message is sent, the next
  in-flight or delayed message becomes visible, or its wait ends — same answers, no wake-ups
  in between.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

SWEEP_EVERY = 10.0
_poll = threading.local()


def expired_keys(table: Any, now: float) -> list[tuple[Any, Any]]:
    """(hash key, range key or None) of the items of a moto table whose TTL has passed."""
    ttl = getattr(table, "ttl", None) or {}
    if ttl.get("TimeToLiveStatus") != "ENABLED" or not ttl.get("AttributeName"):
        return []
    name = ttl["AttributeName"]
    found = []
    for hash_key, entry in list(table.items.items()):
        items = list(entry.items()) if table.range_key_attr else [(None, entry)]
        for range_key, item in items:
            value = item.attrs.get(name)
            if value is None or value.type != "N":  # DynamoDB ignores a TTL that is not a Number
                continue
            try:
                expires = float(value.value)
            except (TypeError, ValueError):
                continue
            if expires < now:
                found.append((hash_key, range_key))
    return found


def sweep_expired(now: float | None = None) -> int:
    """Delete every expired item of every table with TTL enabled; how many were deleted."""
    from moto.dynamodb.models import dynamodb_backends

    moment = time.time() if now is None else now
    deleted = 0
    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            for table in list(backend.tables.values()):
                for hash_key, range_key in expired_keys(table, moment):
                    if table.delete_item(hash_key, range_key) is not None:
                        deleted += 1
    return deleted


class TtlSweeper:
    """A daemon thread running ``sweep_expired`` every ``every`` seconds, inside ``guard``
    (the persistence lock's shared hold, so a snapshot never sees half a sweep);
    ``changed`` is called when it deleted something."""

    def __init__(
        self,
        every: float = SWEEP_EVERY,
        *,
        guard: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        changed: Callable[[], None] | None = None,
    ) -> None:
        self.every = every
        self._guard = guard or contextlib.nullcontext
        self._changed = changed or (lambda: None)
        self._stop = threading.Event()
        self.deleted = 0

    def start(self) -> None:
        threading.Thread(target=self._run, name="dynamodb-ttl", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with self._guard():
                count = sweep_expired()
            if count:
                self.deleted += count
                self._changed()


# ---------------------------------------------------------------------------- SQS long polls
@contextlib.contextmanager
def _polling_until(deadline: float | None) -> Iterator[None]:
    previous = getattr(_poll, "deadline", None)
    _poll.deadline = deadline
    try:
        yield
    finally:
        _poll.deadline = previous


def next_change(queue: Any, now_ms: float) -> float | None:
    """When (epoch ms) the next in-flight or delayed message of ``queue`` becomes visible."""
    times = [
        t
        for m in list(queue._messages)
        for t in (getattr(m, "visible_at", 0) or 0, getattr(m, "delayed_until", 0) or 0)
        if t > now_ms
    ]
    return min(times) if times else None


def sleeping_long_polls() -> None:
    """Patch moto's SQS: a waiting receive sleeps until something can change its answer."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue.wait_for_messages, "_sleeping", False):
        return
    receive = SQSBackend.receive_message

    def receive_message(backend: Any, queue_name: str, count: int, wait_seconds_timeout: int, *a: Any, **k: Any) -> Any:
        deadline = time.time() + wait_seconds_timeout if wait_seconds_timeout else None
        with _polling_until(deadline):
            return receive(backend, queue_name, count, wait_seconds_timeout, *a, **k)

    def wait_for_messages(queue: Any, timeout: int) -> None:
        deadline = getattr(_poll, "deadline", None)
        with queue._messages_lock:
            if queue.messages:
                return
            now = time.time()
            limit = (deadline - now + 0.005) if deadline is not None else float(timeout)
            change = next_change(queue, now * 1000)
            if change is not None:
                limit = min(limit, change / 1000 - now + 0.001)
            if limit > 0:
                queue._messages_lock.wait(limit)  # add_message notifies

    wait_for_messages._sleeping = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign,assignment]
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign,assignment]


# ---------------------------------------------------------------------------- DynamoDB parsing
def cached_update_expressions(size: int = 1024) -> None:
    """Parse each UpdateExpression string once: moto parses it twice per UpdateItem (the
    response layer's checks, then the backend), and a product sends a handful of distinct
    expressions. The syntax tree is never changed after parsing (moto's validator works on a
    deep copy of it), so one tree serves every call with the same string."""
    import functools
    import importlib

    # moto's parsing modules are untyped (a module-level "type: ignore"): used as Any
    UpdateExpressionParser: Any = importlib.import_module("moto.dynamodb.parsing.expressions").UpdateExpressionParser

    if getattr(UpdateExpressionParser.make, "_cached", False):
        return
    make = UpdateExpressionParser.make.__func__

    @functools.lru_cache(maxsize=size)
    def parsed(expression: str) -> Any:
        return make(UpdateExpressionParser, expression)

    def cached(cls: Any, expression: str) -> Any:
        return parsed(expression)

    cached._cached = True  # type: ignore[attr-defined]
    cached.cache_info = parsed.cache_info  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(cached)


def faster_ast_traversal() -> None:
    """moto validates an UpdateExpression with ten depth-first passes over its syntax tree,
    and each node of each pass (and of each search for clauses) costs ``isinstance`` checks against classes built on
    ABCMeta (a Python-level hook per check): most of an UpdateItem's CPU. The same pass with
    the two answers remembered per class (the tree's classes register no virtual subclasses,
    and each pass's processed classes are fixed per pass class), same order, same result."""
    import importlib

    ast: Any = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
    DepthFirstTraverser, Expression, Node = ast.DepthFirstTraverser, ast.Expression, ast.Node
    UpdateExpressionFunction = ast.UpdateExpressionFunction

    if getattr(DepthFirstTraverser.traverse_node_recursively, "_fast", False):
        return
    is_node: dict[type, bool] = {}
    processed: dict[tuple[type, type], bool] = {}

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        cls = type(node)
        known = is_node.get(cls)
        if known is None:
            known = is_node[cls] = isinstance(node, Node)
        if not known:
            return node
        parent_node = node.parent
        children = node.children
        if children is not None:
            for i, child_node in enumerate(children):
                self.pre_processing_of_child(node, i)
                traverse_node_recursively(self, child_node, i)
        key = (type(self), cls)
        wanted = processed.get(key)
        if wanted is None:
            wanted = processed[key] = isinstance(node, self.nodes_to_be_processed())
        if wanted:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    nested: dict[type, bool] = {}

    def find_clauses(self: Any, clause_types: Any) -> list[Any]:
        clauses = []
        for child in self.children or []:
            cls = type(child)
            if cls in clause_types:
                clauses.append(child)
                continue
            inner = nested.get(cls)
            if inner is None:
                inner = nested[cls] = isinstance(child, Expression | UpdateExpressionFunction)
            if inner:
                clauses.extend(find_clauses(child, clause_types))
        return clauses

    traverse_node_recursively._fast = True  # type: ignore[attr-defined]
    Node.find_clauses = find_clauses
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively


# ---------------------------------------------------------------------------- DynamoDB queries
def _equal(attribute: Any, value: Any) -> bool:
    """moto's DynamoType equality, without its per-call casts for strings and binaries."""
    if attribute is None:
        return False
    if attribute.type == value.type and value.type in ("S", "B"):
        return bool(attribute.value == value.value)
    return bool(attribute == value)


class Buckets:
    """The items of each table by the value of one attribute, valid while no DynamoDB call has
    written anything since they were built (``changed`` is called for every call that may
    write: the endpoint's dispatcher and the TTL sweeper call it). Under writes they are
    rebuilt at the next query, one pass like moto's own; while the data rests (an idle stack,
    a dashboard polling, the reconciler's 64 shard queries a minute) a query costs what its
    partition holds."""

    def __init__(self) -> None:
        import threading

        self.generation = 0
        self._lock = threading.Lock()
        self._built: dict[tuple[int, str], tuple[int, Any, dict[tuple[str, Any], list[Any]]]] = {}

    def changed(self) -> None:
        with self._lock:
            self.generation += 1
            self._built.clear()

    def matching(self, table: Any, name: str, value: Any) -> list[Any] | None:
        """The items whose ``name`` equals ``value``; None where buckets don't apply."""
        if value.type not in ("S", "B"):
            return None
        key = (id(table), name)
        with self._lock:
            generation = self.generation
            built = self._built.get(key)
        if built is None or built[0] != generation or built[1] is not table:
            buckets: dict[tuple[str, Any], list[Any]] = {}
            for item in _items(table):
                attribute = item.attrs.get(name)
                if attribute is not None and attribute.type in ("S", "B"):
                    buckets.setdefault((attribute.type, attribute.value), []).append(item)
            built = (generation, table, buckets)
            with self._lock:
                if self.generation == generation:
                    self._built[key] = built
        return list(built[2].get((value.type, value.value), ()))


def _items(table: Any) -> Any:
    for hash_set in list(table.items.values()):
        yield from (list(hash_set.values()) if table.range_key_attr else (hash_set,))


def narrowed_index_queries(buckets: Buckets | None = None) -> None:
    """A Query on a global secondary index looks at the items that have its partition key
    value only. moto answers it by sorting every item of the table by its primary key and
    then testing each one, so with sharded indexes (a listing reads 32 shards, the reconciler
    64) its CPU grew with the table times the shards. The same answer: the items whose
    attribute equals each partition key condition, handed to moto's query, which tests them
    and sorts them by the index's keys (then the table's, so no two tie) as before. With
    ``buckets`` (the endpoint, which tells them of every write) the first condition's items
    come from them instead of a pass over the table."""
    import importlib
    import threading

    Table: Any = importlib.import_module("moto.dynamodb.models.table").Table

    if getattr(Table.query, "_narrowed", False):
        return
    query, all_items = Table.query, Table.all_items
    narrowed = threading.local()

    def matching(table: Any) -> Any:
        only: list[tuple[str, Any]] | None = getattr(narrowed, "conditions", None)
        if only is None or id(getattr(narrowed, "table", None)) != id(table):
            return all_items(table)
        # unsorted: moto sorts what matches by the index's keys and the table's, which are unique
        first = buckets.matching(table, *only[0]) if buckets is not None else None
        candidates = _items(table) if first is None else first
        return [item for item in candidates if all(_equal(item.attrs.get(name), value) for name, value in only)]

    def narrowed_query(table: Any, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions")
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        if not index_name or not conditions:
            return query(table, *args, **kwargs)
        narrowed.table, narrowed.conditions = table, list(conditions)
        try:
            return query(table, *args, **kwargs)
        finally:
            narrowed.table = narrowed.conditions = None

    narrowed_query._narrowed = True  # type: ignore[attr-defined]
    Table.query = narrowed_query
    Table.all_items = matching
