"""A local stack of our own (``python -m infra.local`` on free ports), its processes' CPU
time, and the HTTP helpers the benchmarks share."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from taskrunner_cli.sse import decode, raw_events

from infra.local.launch import start_runner, wait_until_serving
from infra.local.procs import Proc, descendants, free_port, kill, read, wait_gone

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclasses.dataclass
class LocalStack:
    url: str
    proc: subprocess.Popen[bytes]
    tmp: Path
    state: dict[str, Any]
    ready_seconds: float
    args: list[str]

    @property
    def api_key(self) -> str:
        return str(self.state["api_key"])

    @property
    def log_path(self) -> Path:
        return self.tmp / "runner.log"

    def client(self, **kw: Any) -> httpx.Client:
        """One persistent connection (keep-alive) sending the development API key."""
        headers = {"X-Api-Key": self.api_key, **kw.pop("headers", {})}
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 30), headers=headers, **kw)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the runner (it stops its functions and the AWS endpoint), then make sure
        none of the processes it started is left."""
        family = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        kill(wait_gone(family, 5))


def start_stack(*, args: list[str] | None = None, env: dict[str, str] | None = None, timeout: float = 90) -> LocalStack:
    """Start ``python -m infra.local`` on free ports (HTTP front and AWS endpoint), wait
    until /health answers. The runner dies with this process, whatever happens to it."""
    tmp = Path(tempfile.mkdtemp(prefix="taskrunner-bench-"))
    port, moto_port = free_port(), free_port()
    state_file = tmp / "runner.json"
    extra = list(args or [])
    proc = start_runner(
        port=port,
        moto_port=moto_port,
        state_file=state_file,
        log_path=tmp / "runner.log",
        args=extra,
        env=env,
        die_with_us=True,
    )
    stack = LocalStack(f"http://127.0.0.1:{port}", proc, tmp, {}, 0.0, extra)
    try:
        stack.state, stack.ready_seconds = wait_until_serving(proc, stack.url, state_file, stack.log_path, timeout)
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def running_stack(*, args: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[LocalStack]:
    stack = start_stack(args=args, env=env)
    ok = False
    try:
        yield stack
        ok = True
    finally:
        stack.stop()
        if ok:
            shutil.rmtree(stack.tmp, ignore_errors=True)
        else:
            print(f"  (runner log kept in {stack.log_path})", file=sys.stderr)


# ---------------------------------------------------------------------------- processes
CPU_GROUPS = (
    "API function",
    "worker function",
    "other functions",
    "stream function",
    "runner (front + pollers)",
    "moto (excluded)",
)


def classify(proc: Proc, root: int) -> str:
    """Which part of the stack a process is, by its command line."""
    if proc.pid == root:
        return "runner (front + pollers)"
    cmd = proc.cmdline
    if "moto.server" in cmd or "moto_server" in cmd:
        return "moto (excluded)"
    if "infra/local/child.py" in cmd:
        if "taskrunner.entrypoints.api.handler" in cmd:
            return "API function"
        if "taskrunner.entrypoints.worker.handler" in cmd:
            return "worker function"
        return "other functions"
    if "taskrunner.entrypoints.stream" in cmd or "run_stream.sh" in cmd:
        return "stream function"
    return "other functions"


@dataclasses.dataclass
class CpuSnapshot:
    at: float
    per_pid: dict[int, tuple[str, float]]  # pid: (group, user+system CPU seconds)
    rss_bytes: dict[int, int] = dataclasses.field(default_factory=dict)  # pid: resident memory

    @classmethod
    def take(cls, root: int) -> CpuSnapshot:
        """Every process of the stack now, zombies included (their CPU time counts until reaped)."""
        per_pid: dict[int, tuple[str, float]] = {}
        rss: dict[int, int] = {}
        runner = read(root)
        for proc in [*([runner] if runner else []), *descendants(root, zombies=True)]:
            per_pid[proc.pid] = (classify(proc, root), proc.cpu_seconds)
            rss[proc.pid] = proc.rss_bytes
        return cls(time.monotonic(), per_pid, rss)

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds per group between two snapshots (processes born in between count whole)."""
        out = dict.fromkeys(CPU_GROUPS, 0.0)
        for pid, (group, cpu) in self.per_pid.items():
            earlier = before.per_pid.get(pid)
            out[group] += cpu - (earlier[1] if earlier else 0.0)
        return out

    def processes(self) -> dict[str, int]:
        counts = dict.fromkeys(CPU_GROUPS, 0)
        for group, _ in self.per_pid.values():
            counts[group] += 1
        return counts


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------------------- HTTP helpers
def parse_iso(value: str) -> float:
    """An ISO-8601 timestamp of the API (UTC, 'Z') as epoch seconds."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclasses.dataclass
class Submitted:
    status: int
    seconds: float
    task_id: str | None
    created_at: str | None
    throttled: int = 0
    error: str | None = None


def submit(
    client: httpx.Client, body: dict[str, Any], *, retry_throttled: bool = True, deadline: float | None = None
) -> Submitted:
    """POST /api/tasks; 429/503 mean nothing was stored, so they are retried after Retry-After."""
    throttled = 0
    while True:
        started = time.perf_counter()
        try:
            response = client.post("/api/tasks", json=body)
        except httpx.HTTPError as exc:
            return Submitted(0, time.perf_counter() - started, None, None, throttled, f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        if response.status_code in (429, 503) and retry_throttled and (deadline is None or time.monotonic() < deadline):
            throttled += 1
            time.sleep(min(2.0, float(response.headers.get("retry-after", "0.2") or 0.2)) / 4)
            continue
        if response.status_code == 202:
            data = response.json()
            return Submitted(202, seconds, data["task_id"], data["created_at"], throttled)
        return Submitted(response.status_code, seconds, None, None, throttled, response.text[:200])


def run_clients(
    count: int, jobs: list[Any], work: Callable[[httpx.Client, Any], Any], make_client: Callable[[], httpx.Client]
) -> list[Any]:
    """Run ``work(client, job)`` for every job on ``count`` threads, each with its own
    persistent client; results in job order."""
    results: list[Any] = [None] * len(jobs)
    index = iter(range(len(jobs)))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def loop() -> None:
        with make_client() as client:
            while not failures:
                with lock:
                    i = next(index, None)
                if i is None:
                    return
                try:
                    results[i] = work(client, jobs[i])
                except BaseException as exc:
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=loop, name=f"bench-client-{n}", daemon=True) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return results


def get_json(client: httpx.Client, path: str, params: dict[str, Any], *, patience: float = 60.0) -> Any:
    """GET as the API asks its clients to: a 503 (a dependency timed out: here the embedded
    endpoint, saturated by the load being measured) or a 429 is tried again after its
    Retry-After, for up to ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while True:
        response = client.get(path, params=params)
        if response.status_code not in (429, 503) or time.monotonic() > deadline:
            response.raise_for_status()
            return response.json()
        time.sleep(min(5.0, float(response.headers.get("Retry-After") or 1)))


def any_active(client: httpx.Client) -> bool:
    return bool(get_json(client, "/api/tasks", {"active": "true", "limit": 1})["tasks"])


def wait_idle(client: httpx.Client, timeout: float, interval: float = 1.0) -> float:
    """Wait until no task of the owner is PENDING, RUNNING or RETRYING; the seconds it took.
    TimeoutError if it does not happen. One listing a second: it reads every shard of the
    active index, and the embedded endpoint answers an index query by scanning the table, so
    a tighter poll would put the observer's own reads into the figures it measures (the
    benchmarks time tasks by their ``completed_at``, not by this poll)."""
    started = time.monotonic()
    while True:
        if not any_active(client):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"tasks still active after {timeout:.0f} s")
        time.sleep(interval)


def collect(
    client: httpx.Client, status: str, wanted: set[str] | None = None, *, path: str = "/api/tasks", key: str = "tasks"
) -> list[dict[str, Any]]:
    """Every item of a list endpoint (pages of 25, newest first); stops early once every
    ``wanted`` task id was seen. Pages of 25: the embedded endpoint takes about 9 ms per
    whole task item it returns (moto's response serialiser), so a page of 100 under load
    can outlast the API's 1.5 s read timeout."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 25}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        page = get_json(client, path, params)
        for item in page[key]:
            items.append(item)
            if "task_id" in item:
                seen.add(item["task_id"])
        cursor = page.get("next_cursor")
        if not cursor or (wanted is not None and wanted <= seen):
            return items


def sse_follow(client: httpx.Client, path: str, *, timeout: float = 120) -> list[tuple[float, dict[str, Any]]]:
    """Read a task's Server-Sent Events to the end: (arrival wall-clock time, data) each, parsed
    by the CLI's parser (taskrunner_cli.sse)."""
    events: list[tuple[float, dict[str, Any]]] = []
    headers = {"accept": "text/event-stream"}
    with client.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=timeout)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"stream {path}: HTTP {response.status_code}")
        for raw in raw_events(response.iter_lines()):
            events.append((time.time(), decode(raw).data))
    return events
