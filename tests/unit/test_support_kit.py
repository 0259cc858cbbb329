"""The kit the tests, the benchmarks and the smoke test share: the one Server-Sent Events parser
(taskrunner_cli.sse) behind every stream reader, the one /proc reader (infra/local/procs.py),
the Lambda context stand-in; and the direction they depend in (infra never imports tests or bench)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from taskrunner_cli.sse import Event, RawEvent, decode, parse_sse, raw_events

from bench.stack import sse_follow
from infra.local import procs
from tests.support.lambda_context import LambdaContext
from tests.support.stack import sse_events

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- the SSE parser
def test_data_lines_of_one_event_are_joined_and_comments_skipped():
    lines = [": heartbeat", "retry: 500", "id: 4", "event: progress", 'data: {"a":', "data: 1}", "", ": again", ""]
    assert list(raw_events(lines)) == [RawEvent("4", "progress", '{"a":\n1}')]
    assert list(parse_sse(lines)) == [Event(4, {"a": 1}, "progress")]


def test_lines_that_keep_their_crlf_or_lf_ending_parse_the_same():
    plain = ["id: 1", 'data: {"s": "RUNNING"}', "", "data: {}", ""]
    assert list(raw_events([f"{line}\r\n" for line in plain])) == list(raw_events(plain))
    assert list(raw_events([f"{line}\n" for line in plain])) == list(raw_events(plain))
    assert [e.id for e in raw_events(plain)] == ["1", None]  # an id belongs to its own event only


def test_an_event_the_stream_ends_before_its_blank_line_is_not_dispatched():
    assert list(raw_events(["id: 1", 'data: {"s": 1}', "", "id: 2", 'data: {"s": 2}'])) == [
        RawEvent("1", "message", '{"s": 1}')
    ]


def test_field_values_lose_one_leading_space_only_and_a_bare_data_field_is_empty():
    assert list(raw_events(["data:  two", "data", "data:x", ""])) == [RawEvent(None, "message", " two\n\nx")]


def test_decode_fails_on_what_parse_sse_skips():
    with pytest.raises(ValueError):
        decode(RawEvent("1", "message", "not json"))
    with pytest.raises(ValueError):
        decode(RawEvent("1", "message", "[1, 2]"))
    with pytest.raises(ValueError):
        decode(RawEvent("x", "message", "{}"))
    lines = ["id: x", 'data: {"kept": true}', "", "data: [1]", "", "data: nope", ""]
    assert list(parse_sse(lines)) == [Event(None, {"kept": True})]


def _stream(chunks: list[bytes]) -> httpx.Client:
    """A client whose every GET answers an event stream sent in ``chunks`` (split anywhere)."""

    def answer(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield from chunks

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://stream.test")


# split inside a field name, inside a value, between CR and LF, with a heartbeat comment between events
CHUNKS = [
    b": ok\r\n\r\nid: 1\r\nda",
    b'ta: {"status": "RUN',
    b'NING"}\r',
    b"\n\r\n: hb\r\n\r\nid: 2\r\n",
    b'data: {"status": "COMPLETED"}\r\n\r\n',
]


def test_the_tests_stream_reader_keeps_its_shape_over_split_chunks():
    before = time.monotonic()
    with _stream(CHUNKS) as client:
        events = sse_events(client, "/api/tasks/t")
    assert [(e["id"], e["data"]) for e in events] == [(1, {"status": "RUNNING"}), (2, {"status": "COMPLETED"})]
    assert before <= events[0]["at"] <= events[1]["at"] <= time.monotonic()


def test_the_tests_stream_reader_fails_on_a_malformed_event():
    with _stream([b"data: nope\n\n"]) as client, pytest.raises(ValueError):
        sse_events(client, "/api/tasks/t")


def test_the_benchmarks_stream_reader_keeps_its_shape_over_split_chunks():
    before = time.time()
    with _stream(CHUNKS) as client:
        events = sse_follow(client, "/api/tasks/t")
    assert [data for _, data in events] == [{"status": "RUNNING"}, {"status": "COMPLETED"}]
    assert all(before <= at <= time.time() for at, _ in events)


# ---------------------------------------------------------------------------- the /proc reader
def test_the_reader_sees_this_process():
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # some CPU time to see
        pass
    me = procs.read(os.getpid())
    assert me is not None
    assert (me.pid, me.ppid, me.state) == (os.getpid(), os.getppid(), "R")
    assert Path(sys.executable).name in me.cmdline or "python" in me.cmdline
    times = os.times()
    assert 0.05 <= me.cpu_seconds <= times.user + times.system + 0.02
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert me.rss_bytes > 10 * 2**20 and abs(me.rss_bytes - resident) < 8 * 2**20
    assert me.rss_mib == me.rss_bytes / 2**20
    assert me.alive
    assert me.pid in {p.pid for p in procs.all_processes()}


def test_a_reused_pid_or_a_missing_process_is_not_alive():
    me = procs.read(os.getpid())
    assert me is not None
    assert not procs.Proc(me.pid, me.ppid, me.start + 1, "S", "", 0.0, 0).alive
    assert procs.read(2**22 + 1) is None  # above pid_max


def test_children_are_found_stopped_and_their_zombies_told_apart():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # quick exits and, not waited for, stays a zombie
            zombie = procs.read(quick.pid)
            if zombie is not None and zombie.state == "Z":
                break
            time.sleep(0.02)
        live = {p.pid: p for p in procs.descendants(os.getpid())}
        assert sleeper.pid in live and quick.pid not in live
        assert live[sleeper.pid].ppid == os.getpid() and "time.sleep(60)" in live[sleeper.pid].cmdline
        assert quick.pid in {p.pid for p in procs.descendants(os.getpid(), zombies=True)}
        procs.kill([live[sleeper.pid]])
        sleeper.wait(10)  # reaped: gone from /proc
        assert procs.wait_gone([live[sleeper.pid]], 5) == []
    finally:
        for child in (sleeper, quick):
            child.kill()
            child.wait(10)


# ---------------------------------------------------------------------------- the Lambda context
def test_the_lambda_context_runs_down_with_the_clock():
    context = LambdaContext("WorkerFunction", memory=1024, remaining_seconds=2.0)
    assert 1900 <= context.get_remaining_time_in_millis() <= 2000
    assert (context.function_name, context.memory_limit_in_mb, context.aws_request_id) == (
        "WorkerFunction",
        1024,
        "req-1",
    )
    assert context.invoked_function_arn.endswith(":function:WorkerFunction")
    assert LambdaContext(remaining_seconds=0.0).get_remaining_time_in_millis() == 0


# ---------------------------------------------------------------------------- the direction
def test_infra_imports_neither_tests_nor_bench():
    wrong = []
    for path in sorted((ROOT / "infra").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            wrong += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("tests", "bench")]
    assert wrong == []
