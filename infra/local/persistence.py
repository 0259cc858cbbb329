"""The embedded endpoint's data kept across restarts: moto's DynamoDB, SQS and Secrets Manager.

moto keeps each service's data in in-process backend objects. This module pickles them into
one snapshot file (``<state dir>/snapshot.bin``):

- periodically (every ``every`` seconds, when a call may have changed something, or longer
  when the data is large: the wait is at least ``COST_FACTOR`` times what the last snapshot
  held every call, so snapshots hold the endpoint at most 1/``COST_FACTOR`` of the time, however much
  it keeps) and on stop (SIGTERM/SIGINT of the endpoint), so a crash or ``kill -9`` loses at
  most that window;
- consistently: every call runs under a shared lock and a snapshot takes it exclusively, so
  none is half-applied in a snapshot (an SQS long poll lets go of it while it waits);
- atomically: written to a temporary file, fsynced, renamed over the old one (and the
  directory fsynced), so a crash mid-write leaves the previous snapshot whole.

On start, ``restore`` puts the backends back before the endpoint serves. A snapshot that
cannot be read back (another moto or format version, a damaged file) is moved aside as
``snapshot.bin.<time>.unreadable`` and the endpoint starts empty, saying so.

The queues' messages are kept as they are (bodies, attributes, receive counts, in-flight
visibility deadlines): an in-flight message becomes visible again when its timeout expires,
as it would on AWS, and its receive count still counts towards the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SERVICES = ("dynamodb", "sqs", "secretsmanager")
FORMAT = 1
SNAPSHOT = "snapshot.bin"
# a snapshot stops every call while it pickles: the next waits at least this many times as long
COST_FACTOR = 20.0
# calls that change nothing: they do not make a snapshot due (unknown calls do)
READS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "DescribeTable",
        "ListTables",
        "DescribeTimeToLive",
        "ListTagsOfResource",
        "GetQueueUrl",
        "GetQueueAttributes",
        "ListQueues",
        "ListQueueTags",
        "ListDeadLetterSourceQueues",
        "GetSecretValue",
        "DescribeSecret",
        "ListSecrets",
        "GetRandomPassword",
        # an empty receive changes nothing; one that does is marked by the backend (below)
        "ReceiveMessage",
    }
)
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


class StateLock:
    """Many calls at once, or one snapshot alone; a waiting snapshot goes before new calls."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._local = threading.local()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        self._acquire_shared()
        self._local.held = True
        try:
            yield
        finally:
            self._local.held = False
            self._release_shared()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Let go of this thread's shared hold for a while (a long poll waiting)."""
        held = getattr(self._local, "held", False)
        if held:
            self._release_shared()
        try:
            yield
        finally:
            if held:
                self._acquire_shared()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        self.acquire_exclusive()
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    def acquire_exclusive(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def _acquire_shared(self) -> None:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def _release_shared(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()


class _Pickler(pickle.Pickler):
    """Locks and conditions (SQS queues hold one) are made anew on load."""

    dispatch_table = {
        threading.Condition: lambda _: (threading.Condition, ()),
        _LOCK_TYPES[0]: lambda _: (threading.Lock, ()),
        _LOCK_TYPES[1]: lambda _: (threading.RLock, ()),
    }


def dump_backends() -> bytes:
    """A snapshot of the services' backends: a JSON header line, then the pickle."""
    from moto.backends import get_backend

    data: dict[str, dict[str, dict[str, Any]]] = {}
    counts = {"tables": 0, "queues": 0, "messages": 0, "items": 0, "secrets": 0}
    for service in SERVICES:
        backends = get_backend(service)  # type: ignore[call-overload]
        for account, regions in dict(backends).items():
            for region, backend in dict(regions).items():
                data.setdefault(service, {}).setdefault(account, {})[region] = backend
                _count(service, backend, counts)
    header = {
        "format": FORMAT,
        "moto": _moto_version(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "saved_at": time.time(),
        "counts": counts,
    }
    out = io.BytesIO()
    out.write(json.dumps(header).encode() + b"\n")
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(data)
    return out.getvalue()


def _count(service: str, backend: Any, counts: dict[str, int]) -> None:
    if service == "dynamodb":
        tables = getattr(backend, "tables", {})
        counts["tables"] += len(tables)
        counts["items"] += sum(len(t) for t in tables.values())
    elif service == "sqs":
        queues = getattr(backend, "queues", {})
        counts["queues"] += len(queues)
        counts["messages"] += sum(len(q._messages) for q in queues.values())
    elif service == "secretsmanager":
        counts["secrets"] += len(getattr(backend, "secrets", {}))


def load_backends(blob: bytes) -> dict[str, Any]:
    """Puts a snapshot's backends in place of moto's; returns its header. ValueError if the
    snapshot is not one this moto can read back (nothing is changed then)."""
    from moto.backends import get_backend

    head, sep, body = blob.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        raise ValueError("not a snapshot of this runner (no header)") from None
    if not sep or not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"snapshot format {header.get('format') if isinstance(header, dict) else '?'}, not {FORMAT}")
    if header.get("moto") != _moto_version():
        raise ValueError(f"written by moto {header.get('moto')}, this is moto {_moto_version()}")
    try:
        data = pickle.loads(body)  # noqa: S301 - our own file, written by this module
    except Exception as exc:
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from None
    for service, accounts in data.items():
        backends = get_backend(service)
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backends[account][region] = backend
    return dict(header)


def write_atomically(path: Path, blob: bytes) -> None:
    """temp file, fsync, rename over ``path``, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(counts: dict[str, int]) -> str:
    return (
        f"{counts.get('tables', 0)} tables ({counts.get('items', 0)} items), "
        f"{counts.get('queues', 0)} queues ({counts.get('messages', 0)} messages), "
        f"{counts.get('secrets', 0)} secrets"
    )


class Persistence:
    """WSGI middleware + snapshot thread of the embedded endpoint."""

    def __init__(self, app: Any, state_dir: str | Path, every: float = 2.0, say: Callable[[str], None] | None = None):
        self.app = app
        self.dir = Path(state_dir)
        self.path = self.dir / SNAPSHOT
        self.every = every
        self.lock = StateLock()
        self.dirty = False
        self._say = say or (lambda text: print(f"aws-state: {text}", file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._save_lock = threading.Lock()
        self.last_cost = 0.0  # seconds the last snapshot held every call (pickling, under the lock)
        self._patch_backends()

    # ---- the calls
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.rpartition(".")[2] not in READS or not target:
            self.dirty = True
        with self.lock.shared():
            return self.app(environ, start_response)

    def _patch_backends(self) -> None:
        """An SQS long poll waits without the lock; a receive that took or moved messages
        makes a snapshot due."""
        from moto.sqs.models import Queue, SQSBackend

        lock = self.lock
        if not getattr(Queue.wait_for_messages, "_persistence", False):
            wait = Queue.wait_for_messages

            def wait_for_messages(queue: Any, timeout: int) -> None:
                with lock.released():
                    wait(queue, timeout)

            wait_for_messages._persistence = True  # type: ignore[attr-defined]
            Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign,assignment]
        receive = SQSBackend.receive_message
        if not getattr(receive, "_persistence", False):
            outer = self

            def receive_message(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
                queue = backend.queues.get(queue_name)
                before = len(queue._messages) if queue is not None else 0
                result = receive(backend, queue_name, *args, **kwargs)
                if result or (queue is not None and len(queue._messages) != before):
                    outer.dirty = True
                return result

            receive_message._persistence = True  # type: ignore[attr-defined]
            SQSBackend.receive_message = receive_message  # type: ignore[method-assign,assignment]

    # ---- restore and save
    def restore(self) -> str:
        """Before serving: the last snapshot's data back in moto, or a fresh start said why."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return f"no snapshot in {self.dir}: starting empty"
        try:
            header = load_backends(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(f"{SNAPSHOT}.{time.strftime('%Y%m%dT%H%M%S')}.unreadable")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            return f"cannot restore {self.path}: {exc}; kept it as {aside.name} and starting EMPTY"
        age = time.time() - float(header.get("saved_at", time.time()))
        return f"restored {describe(header.get('counts', {}))} from {self.path} (saved {age:.0f} s ago)"

    def save(self) -> dict[str, int] | None:
        """One snapshot now, if anything may have changed since the last one."""
        with self._save_lock:
            with self.lock.exclusive():
                if not self.dirty and self.path.exists():
                    return None
                self.dirty = False
                started = time.monotonic()
                blob = dump_backends()
                self.last_cost = time.monotonic() - started
            write_atomically(self.path, blob)
            counts: dict[str, int] = json.loads(blob.partition(b"\n")[0])["counts"]
            return counts

    def next_wait(self) -> float:
        """Seconds until the next snapshot: ``every``, or longer after a costly one."""
        return max(self.every, COST_FACTOR * self.last_cost)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aws-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.next_wait()):
            try:
                self.save()
            except Exception as exc:  # a failed snapshot must not stop the endpoint
                self.dirty = True
                self._say(f"snapshot failed: {type(exc).__name__}: {exc}")

    def final_save(self) -> None:
        """On stop: the last snapshot, then no call gets through any more (the caller exits)."""
        self._stop.set()
        with self._save_lock:
            self.lock.acquire_exclusive()  # never given back: no call gets through after this
            blob = dump_backends()
            write_atomically(self.path, blob)
        counts = json.loads(blob.partition(b"\n")[0])["counts"]
        self._say(f"saved {describe(counts)} to {self.path}")
