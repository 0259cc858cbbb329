"""The command-line client (cli/taskrunner_cli): argument parsing, output, and its HTTP against a fake service
on 127.0.0.1."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from taskrunner_cli import app as cli

KEY = "tr_test0000_secret"
TASK_ID = "6f1d2c3b-0000-4000-8000-000000000001"


def task(status="RUNNING", percent=0.0, message=None, version=1, **extra):
    body = {
        "task_id": TASK_ID,
        "name": "sleep",
        "status": status,
        "queue": "default",
        "parameters": {"seconds": 2},
        "metadata": {},
        "result": {"slept_seconds": 2} if status == "COMPLETED" else None,
        "error": None,
        "progress": {"percent": percent, "message": message},
        "attempts": 1,
        "max_attempts": 3,
        "timeout_seconds": 840,
        "cancel_requested": False,
        "next_attempt_at": None,
        "created_at": "2026-01-02T03:04:05.000Z",
        "started_at": "2026-01-02T03:04:06.000Z",
        "updated_at": "2026-01-02T03:04:07.000Z",
        "completed_at": None,
        "callback": None,
        "version": version,
        "links": links(),
    }
    body.update(extra)
    return body


def links(token="tok.sig"):
    base = f"/api/tasks/{TASK_ID}"
    return {"self": base, "state": f"{base}/state", "stream": f"{base}?token={token}", "cancel": f"{base}/cancel"}


def sse(*tasks_: dict[str, Any]) -> list[str]:
    chunks = ["retry: 1000\n\n", ": a comment\n\n"]
    chunks += [f"id: {t['version']}\ndata: {json.dumps(t)}\n\n" for t in tasks_]
    return chunks


# ---------------------------------------------------------------------------- fake service


class FakeService:
    """Routes (method, path) to handlers; records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {}
        self.requests: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self, method):
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = {
                    "method": method,
                    "path": parts.path,
                    "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "json": json.loads(body) if body else None,
                }
                service.requests.append(request)
                route = service.routes.get((method, parts.path))
                if route is None:
                    answer = (404, {"detail": "Not Found"})
                else:
                    answer = route(request)
                status, payload = answer
                if isinstance(payload, list):  # an event stream: chunks sent as they come
                    self.send_response(status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in payload:
                        self.wfile.write(chunk.encode())
                        self.wfile.flush()
                    self.close_connection = True
                    return
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def route(self, method: str, path: str, handler: Callable[[dict[str, Any]], Any]) -> None:
        self.routes[(method, path)] = handler

    def answer(self, method: str, path: str, status: int, payload: Any) -> None:
        self.routes[(method, path)] = lambda _req: (status, payload)


def run(service_or_url, *argv, env=None):
    url = service_or_url.url if isinstance(service_or_url, FakeService) else service_or_url
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", url, "--api-key", KEY, *argv], env=env or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seconds=1", ("seconds", 1)),
        ("seconds=1.5", ("seconds", 1.5)),
        ("name=hello", ("name", "hello")),
        ("flag=true", ("flag", True)),
        ("nothing=null", ("nothing", None)),
        ("numbers=[1, 2, 3]", ("numbers", [1, 2, 3])),
        ('obj={"a": 1}', ("obj", {"a": 1})),
        ('quoted="5"', ("quoted", "5")),
        ("empty=", ("empty", "")),
        ("url=https://x.test/a?b=c", ("url", "https://x.test/a?b=c")),
        (" spaced =two words", ("spaced", "two words")),
    ],
)
def test_key_value_parses_json_or_falls_back_to_string(text, expected):
    assert cli.key_value(text) == expected


@pytest.mark.parametrize("text", ["seconds", "=1", " =x"])
def test_key_value_refuses_what_is_not_key_value(text):
    with pytest.raises(Exception, match="expected key=value"):
        cli.key_value(text)


def test_connection_options_go_before_or_after_the_command():
    before = cli.parse_args(["--url", "http://a:1", "--api-key", "k", "submit", "sleep", "seconds=1", "--follow"])
    after = cli.parse_args(["submit", "sleep", "seconds=1", "--follow", "--url", "http://a:1", "--api-key", "k"])
    for args in (before, after):
        assert (args.command, args.type, args.params, args.follow) == ("submit", "sleep", [("seconds", 1)], True)
        assert (args.url, args.api_key) == ("http://a:1", "k")


def test_list_options_are_parsed_and_checked(capsys):
    args = cli.parse_args(["list", "--status", "completed", "--active", "--name", "sleep", "--limit", "5"])
    assert (args.status, args.active, args.name, args.limit, args.cursor) == ("COMPLETED", True, "sleep", 5, None)
    bad_lines = (
        ["list", "--status", "DONE"],
        ["list", "--limit", "0"],
        ["submit", "sleep", "seconds"],
        ["submit", "sleep", "--follow", "seconds"],
        ["submit", "sleep", "--follow", "a=1", "--bogus"],
        ["list", "a=1"],
        ["frobnicate"],
        [],
    )
    for bad in bad_lines:
        with pytest.raises(SystemExit) as stopped:
            cli.parse_args(bad)
        assert stopped.value.code == 2
    assert "expected key=value" in capsys.readouterr().err


def test_options_come_from_flags_then_environment_then_the_local_runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse = cli.parse_args
    opts = cli.resolve_options(parse(["types"]), {})
    assert (opts.url, opts.api_key, opts.timeout, opts.json) == ("http://127.0.0.1:8000", None, 30.0, False)

    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "runner.json").write_text(
        json.dumps({"url": "http://127.0.0.1:8000", "api_key": "tr_local"})
    )
    assert cli.resolve_options(parse(["types"]), {}).api_key == "tr_local"

    env = {"TASKRUNNER_URL": "http://env:1", "TASKRUNNER_API_KEY": "tr_env"}
    opts = cli.resolve_options(parse(["types"]), env)
    assert (opts.url, opts.api_key) == ("http://env:1", "tr_env")

    opts = cli.resolve_options(
        parse(["types", "--url", "http://flag:2", "--api-key", "tr_flag", "--json", "--timeout", "3"]), env
    )
    assert (opts.url, opts.api_key, opts.timeout, opts.json) == ("http://flag:2", "tr_flag", 3.0, True)

    (tmp_path / ".local" / "runner.json").write_text("not json")
    assert cli.resolve_options(parse(["types"]), {}).api_key is None


def test_an_invalid_url_is_one_clear_line():
    code, out, err = run("ftp://somewhere", "types")
    assert code == 2 and out == ""
    assert err == "taskrunner: invalid service URL 'ftp://somewhere': expected http(s)://host[:port]\n"


# ---------------------------------------------------------------------------- formatting


def test_progress_line_draws_a_bar():
    assert (
        cli.progress_line(task("RUNNING", 50, "slept 1 of 2 s"), width=10)
        == "[#####-----]  50.0%  RUNNING    slept 1 of 2 s"
    )
    assert cli.progress_line(task("COMPLETED", 40), width=4) == "[####] 100.0%  COMPLETED"
    assert cli.progress_line(task("PENDING", None), width=4, status=False) == "[----]   0.0%"
    assert cli.progress_line(task("RUNNING", 250), width=4).startswith("[####] 100.0%")


def test_progress_display_redraws_in_place_on_a_terminal():
    out = io.StringIO()
    display = cli.ProgressDisplay(out, tty=True)
    display.update(task("RUNNING", 10))
    display.update(task("RUNNING", 10))  # unchanged: not drawn again
    display.update(task("COMPLETED", 100))
    display.finish()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "COMPLETED" in text.rsplit("\r", 1)[1]


def test_progress_display_prints_one_line_per_change_elsewhere():
    out = io.StringIO()
    display = cli.ProgressDisplay(out, tty=False)
    for update in (task("RUNNING", 0), task("RUNNING", 0), task("RUNNING", 50), task("COMPLETED", 100)):
        display.update(update)
    display.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert [line.split()[-1] for line in lines] == ["RUNNING", "RUNNING", "COMPLETED"]


def test_state_is_printed_as_aligned_fields():
    text = cli.format_state(
        task(
            "FAILED",
            30,
            "step 3",
            error={"type": "ValueError", "message": "boom"},
            metadata={"ticket": "T-1"},
            callback={
                "url": "https://h.test/cb",
                "status": "DELIVERED",
                "attempts": 1,
                "last_error": None,
                "delivered_at": "2026-01-02T03:05:00Z",
            },
        )
    )
    lines = dict(line.split(None, 1) for line in text.splitlines() if not line.startswith("next"))
    assert lines["task"] == TASK_ID
    assert lines["status"] == "FAILED"
    assert lines["progress"].startswith("[#########") and lines["progress"].endswith("30.0%  step 3")
    assert lines["attempts"] == "1 of 3"
    assert lines["parameters"] == '{"seconds": 2}'
    assert lines["metadata"] == '{"ticket": "T-1"}'
    assert lines["error"] == "ValueError: boom"
    assert lines["callback"] == "https://h.test/cb  DELIVERED, 1 attempt(s), delivered 2026-01-02T03:05:00Z"
    assert "result" not in lines
    columns = {line.index(value) for line, value in zip(text.splitlines(), lines.values(), strict=False)}
    assert len(columns) == 1  # values line up


def test_list_is_a_table():
    page = {"tasks": [task("COMPLETED", 100), task("RUNNING", 42.4, task_id="short")], "total": 2, "next_cursor": None}
    lines = cli.format_list(page).splitlines()
    assert lines[0].split() == ["TASK", "STATUS", "TYPE", "PROGRESS", "CREATED"]
    assert lines[1].split() == [TASK_ID, "COMPLETED", "sleep", "100%", "2026-01-02T03:04:05.000Z"]
    assert lines[2].split() == ["short", "RUNNING", "sleep", "42%", "2026-01-02T03:04:05.000Z"]
    assert cli.format_list({"tasks": []}) == "no tasks"


def test_types_show_their_parameters_from_the_schema():
    schema = {
        "properties": {
            "n": {"type": "integer", "default": 10},
            "numbers": {"anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}], "default": None},
            "method": {"enum": ["GET", "POST"], "type": "string", "default": "GET"},
            "url": {"type": "string"},
        },
        "required": ["url"],
    }
    assert cli.parameters_summary(schema) == 'n: integer=10, numbers: number[]?, method: GET|POST="GET", url*: string'
    text = cli.format_types(
        [{"name": "t", "queue": "io", "timeout_seconds": 9, "description": "Does t.", "parameters_schema": {}}]
    )
    assert text.splitlines()[:3] == ["t  (queue io, timeout 9 s)", "    Does t.", "    parameters: none"]


def test_error_details_become_one_line():
    assert cli.describe_detail("task x not found") == "task x not found"
    detail = [
        {"loc": ["body", "parameters", "seconds"], "msg": "too big", "type": "x"},
        {"loc": [], "msg": "odd", "type": "y"},
    ]
    assert cli.describe_detail(detail) == "parameters.seconds: too big; odd"
    assert cli.describe_detail({"a": 1}) == '{"a": 1}'


def test_server_sent_events_are_parsed():
    lines = iter(
        [
            "retry: 1000",
            "",
            ": heartbeat",
            "id: 3",
            'data: {"status":',
            'data: "RUNNING"}',
            "",
            "id: x",
            "data: nope",
            "",
            'data: {"status": "COMPLETED"}',
            "",
        ]
    )
    events = list(cli.parse_sse(lines))
    assert events == [cli.Event(3, {"status": "RUNNING"}), cli.Event(None, {"status": "COMPLETED"})]


# ---------------------------------------------------------------------------- against a fake service


def test_submit_sends_the_task_and_prints_its_id(service):
    accepted = {
        "task_id": TASK_ID,
        "status": "PENDING",
        "name": "sleep",
        "created_at": "2026-01-02T03:04:05Z",
        "links": links(),
        "message": "Task accepted",
    }
    service.answer("POST", "/api/tasks", 202, accepted)
    code, out, err = run(
        service,
        "submit",
        "sleep",
        "seconds=2",
        "label=nightly",
        "--callback",
        "https://h.test/cb",
        "--delay",
        "5",
        "--max-attempts",
        "2",
        "--priority",
        "--idempotency-key",
        "abc",
    )
    assert (code, out) == (0, TASK_ID + "\n")
    assert f"accepted sleep task {TASK_ID} (PENDING)" in err
    sent = service.requests[-1]
    assert sent["json"] == {
        "name": "sleep",
        "parameters": {"seconds": 2, "label": "nightly"},
        "callback_url": "https://h.test/cb",
        "delay_seconds": 5,
        "max_attempts": 2,
        "priority": True,
    }
    assert sent["headers"]["x-api-key"] == KEY
    assert sent["headers"]["idempotency-key"] == "abc"
    assert sent["headers"]["content-type"] == "application/json"

    code, out, _ = run(service, "submit", "sleep", "--parameters", '{"seconds": 1, "x": 1}', "x=2", "--json")
    assert code == 0 and json.loads(out) == accepted
    assert service.requests[-1]["json"] == {"name": "sleep", "parameters": {"seconds": 1, "x": 2}}


def test_submit_follow_draws_progress_and_prints_the_result(service):
    service.answer(
        "POST", "/api/tasks", 202, {"task_id": TASK_ID, "status": "PENDING", "name": "sleep", "links": links()}
    )
    service.answer(
        "GET",
        f"/api/tasks/{TASK_ID}",
        200,
        sse(
            task("RUNNING", 0, version=2),
            task("RUNNING", 50, "half", version=3),
            task("COMPLETED", 100, "done", version=4),
        ),
    )
    code, out, err = run(service, "submit", "sleep", "seconds=2", "--follow")
    assert code == 0, err
    assert json.loads(out) == {"slept_seconds": 2}
    assert "[###############---------------]  50.0%  RUNNING    half" in err
    assert err.rstrip().endswith("100.0%  COMPLETED  done")
    stream_request = service.requests[-1]
    assert stream_request["query"] == {"token": "tok.sig"}
    assert stream_request["headers"]["accept"] == "text/event-stream"


@pytest.mark.parametrize(
    ("final", "message"),
    [
        (
            task("FAILED", 10, error={"type": "NonRetryableError", "message": "failed on purpose"}, version=5),
            "FAILED: NonRetryableError: failed on purpose",
        ),
        (task("CANCELLED", 10, version=5), "CANCELLED"),
    ],
)
def test_follow_exits_1_when_the_task_does_not_complete(service, final, message):
    service.answer(
        "POST", "/api/tasks", 202, {"task_id": TASK_ID, "status": "PENDING", "name": "sleep", "links": links()}
    )
    service.answer("GET", f"/api/tasks/{TASK_ID}", 200, sse(task("RUNNING", 10, version=2), final))
    code, out, err = run(service, "submit", "sleep", "--follow")
    assert code == 1 and out == ""
    assert err.rstrip().endswith(f"task {TASK_ID} {message}")


def test_follow_resumes_with_last_event_id_when_the_stream_ends_early(service):
    calls = []

    def stream(request):
        calls.append(request)
        if len(calls) == 1:
            return 200, sse(task("RUNNING", 20, version=2))  # the stream's time limit: it just ends
        return 200, sse(task("COMPLETED", 100, version=6))

    service.answer(
        "POST", "/api/tasks", 202, {"task_id": TASK_ID, "status": "PENDING", "name": "sleep", "links": links()}
    )
    service.route("GET", f"/api/tasks/{TASK_ID}", stream)
    service.answer("GET", f"/api/tasks/{TASK_ID}/state", 200, task("RUNNING", 30, version=3))
    code, _, err = run(service, "submit", "sleep", "--follow")
    assert code == 0, err
    assert len(calls) == 2
    assert "last-event-id" not in calls[0]["headers"]
    assert calls[1]["headers"]["last-event-id"] == "2"


def test_follow_gets_a_fresh_stream_link_when_the_token_is_refused(service):
    def stream(request):
        if request["query"]["token"] == "old.sig":
            return 401, {"detail": "stream token expired"}
        return 200, sse(task("COMPLETED", 100, version=4))

    service.answer(
        "POST", "/api/tasks", 202, {"task_id": TASK_ID, "status": "PENDING", "name": "sleep", "links": links("old.sig")}
    )
    service.route("GET", f"/api/tasks/{TASK_ID}", stream)
    service.answer("GET", f"/api/tasks/{TASK_ID}/state", 200, task("RUNNING", version=3, links=links("new.sig")))
    code, _, err = run(service, "submit", "sleep", "--follow")
    assert code == 0, err
    assert [r["query"].get("token") for r in service.requests if r["path"] == f"/api/tasks/{TASK_ID}"] == [
        "old.sig",
        "new.sig",
    ]


def test_follow_uses_an_absolute_stream_link_as_it_is(service):
    other = FakeService()
    other.thread.start()
    try:
        other.answer("GET", f"/api/tasks/{TASK_ID}", 200, sse(task("COMPLETED", 100, version=4)))
        absolute = {**links(), "stream": f"{other.url}/api/tasks/{TASK_ID}?token=t"}
        service.answer(
            "POST", "/api/tasks", 202, {"task_id": TASK_ID, "status": "PENDING", "name": "sleep", "links": absolute}
        )
        code, _, err = run(service, "submit", "sleep", "--follow")
        assert code == 0, err
        assert other.requests[0]["query"] == {"token": "t"}
    finally:
        other.server.shutdown()
        other.server.server_close()


def test_state_list_cancel_and_types(service):
    service.answer("GET", f"/api/tasks/{TASK_ID}/state", 200, task("COMPLETED", 100))
    code, out, _ = run(service, "state", TASK_ID)
    assert code == 0 and out.startswith(f"task        {TASK_ID}\n") and 'result      {"slept_seconds": 2}' in out
    code, out, _ = run(service, "state", TASK_ID, "--json")
    assert json.loads(out)["status"] == "COMPLETED"

    service.answer("GET", "/api/tasks", 200, {"tasks": [task("COMPLETED", 100)], "total": 1, "next_cursor": "CUR"})
    code, out, err = run(service, "list", "--status", "completed", "--active", "--name", "sleep", "--limit", "5")
    assert code == 0
    assert service.requests[-1]["query"] == {"status": "COMPLETED", "active": "true", "name": "sleep", "limit": "5"}
    assert out.splitlines()[1].split()[:3] == [TASK_ID, "COMPLETED", "sleep"]
    assert err == "more: add --cursor CUR\n"
    run(service, "list", "--cursor", "CUR")
    assert service.requests[-1]["query"] == {"cursor": "CUR"}

    service.answer("POST", f"/api/tasks/{TASK_ID}/cancel", 200, task("RUNNING", 10, cancel_requested=True))
    code, out, _ = run(service, "cancel", TASK_ID)
    assert code == 0 and out.startswith(f"{TASK_ID} RUNNING: cancellation requested")
    service.answer("POST", f"/api/tasks/{TASK_ID}/cancel", 200, task("CANCELLED"))
    assert run(service, "cancel", TASK_ID)[1] == f"{TASK_ID} CANCELLED\n"

    types = [
        {
            "name": "sleep",
            "description": "Sleeps.",
            "queue": "default",
            "timeout_seconds": 900,
            "parameters_schema": {"properties": {"seconds": {"type": "number", "default": 5}}},
        }
    ]
    service.answer("GET", "/api/task-types", 200, {"task_types": types})
    code, out, _ = run(service, "types")
    assert code == 0 and "    parameters: seconds: number=5" in out
    assert json.loads(run(service, "types", "--json")[1]) == {"task_types": types}
    assert all(r["headers"]["x-api-key"] == KEY for r in service.requests)


@pytest.mark.parametrize(
    ("status", "payload", "code", "message"),
    [
        (404, {"detail": f"task {TASK_ID} not found"}, 2, f"taskrunner: error 404: task {TASK_ID} not found\n"),
        (
            409,
            {"detail": "task is COMPLETED; cannot cancel"},
            2,
            "taskrunner: error 409: task is COMPLETED; cannot cancel\n",
        ),
        (
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "parameters", "seconds"],
                        "msg": "Input should be greater than or equal to 0",
                        "type": "x",
                    }
                ]
            },
            2,
            "taskrunner: error 422: parameters.seconds: Input should be greater than or equal to 0\n",
        ),
        (
            401,
            {"detail": "missing API key"},
            3,
            "taskrunner: error 401: missing API key (pass --api-key or set TASKRUNNER_API_KEY)\n",
        ),
        (
            503,
            {"detail": "dynamodb is unavailable"},
            3,
            "taskrunner: error 503: dynamodb is unavailable (the service is failing; try again)\n",
        ),
        (
            502,
            {"message": "Internal Server Error"},
            3,
            "taskrunner: error 502: Internal Server Error (the service is failing; try again)\n",
        ),
    ],
)
def test_error_answers_are_one_line_with_their_detail(service, status, payload, code, message):
    service.answer("POST", f"/api/tasks/{TASK_ID}/cancel", status, payload)
    assert run(service, "cancel", TASK_ID) == (code, "", message)


def test_an_unreachable_service_exits_3():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = run(f"http://127.0.0.1:{port}", "list")
    assert (code, out) == (3, "")
    assert err.startswith(f"taskrunner: cannot reach http://127.0.0.1:{port} (")
    assert err.endswith("is the service running? (--url or TASKRUNNER_URL)\n") and err.count("\n") == 1


# ---------------------------------------------------------------------------- with an injected transport


class ScriptedTransport:
    """Answers from a script, without sockets."""

    def __init__(self, answers: list[Any], streams: list[Any]) -> None:
        self.answers = answers
        self.streams = streams
        self.seen: list[tuple[str, str]] = []

    def request(self, method, url, headers, body, timeout):
        self.seen.append((method, url))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        return cli.HttpResponse(status, {}, json.dumps(payload).encode())

    def stream(self, url, headers, timeout) -> Iterator[str]:
        self.seen.append(("STREAM", url))
        script = self.streams.pop(0)
        if isinstance(script, Exception):
            raise script
        for chunk in script:
            if isinstance(chunk, Exception):
                raise chunk
            yield from chunk.split("\n")[:-1]


def test_follow_retries_a_broken_stream_then_gives_up():
    broken = cli.UnreachableError("the stream broke")
    transport = ScriptedTransport(
        answers=[(200, task("RUNNING", 10, version=2))] * 3,
        streams=[[*sse(task("RUNNING", 10, version=2)), broken], broken, sse(task("COMPLETED", 100, version=3))],
    )
    client = cli.Client("http://service.test/dev", KEY, transport=transport)
    slept: list[float] = []
    final = cli.follow(client, task("PENDING"), cli.ProgressDisplay(io.StringIO(), tty=False), sleep=slept.append)
    assert final["status"] == "COMPLETED"
    assert len(slept) == 2
    assert [u for m, u in transport.seen if m == "STREAM"] == [
        f"http://service.test/dev/api/tasks/{TASK_ID}?token=tok.sig"
    ] * 3

    always_broken = ScriptedTransport(answers=[], streams=[broken] * 10)
    client = cli.Client("http://service.test", KEY, transport=always_broken)
    with pytest.raises(cli.UnreachableError):
        cli.follow(
            client, task("PENDING"), cli.ProgressDisplay(io.StringIO(), tty=False), sleep=slept.append, max_failures=3
        )
    assert len([m for m, _ in always_broken.seen if m == "STREAM"]) == 4


def test_main_reports_a_transport_failure_through_the_injected_transport():
    transport = ScriptedTransport(
        answers=[cli.UnreachableError("cannot reach http://service.test (timed out)")], streams=[]
    )
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["types"],
        transport=transport,
        env={"TASKRUNNER_URL": "http://service.test", "TASKRUNNER_API_KEY": KEY},
        out=out,
        err=err,
    )
    assert code == 3
    assert err.getvalue().startswith(
        "taskrunner: cannot reach http://service.test (timed out); is the service running?"
    )
    assert transport.seen == [("GET", "http://service.test/api/task-types")]
