"""``taskrunner``: the command-line client of the task API.

    taskrunner submit sleep seconds=5 --follow
    taskrunner state <task-id>
    taskrunner list --active
    taskrunner cancel <task-id>
    taskrunner types

Standard library only (argparse, urllib, json): it needs neither boto3 nor the service's code.
The service is ``--url`` (or ``TASKRUNNER_URL``, default http://127.0.0.1:8000) and the key
``--api-key`` (or ``TASKRUNNER_API_KEY``, or the local runner's development key from
``.local/runner.json`` in the current directory).

Exit codes: 0 success; 1 the service refused the request (4xx), or a followed task ended
FAILED or CANCELLED; 2 the service is unreachable or failing (5xx); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
LOCAL_STATE_FILE = Path(".local") / "runner.json"
STATUSES = ("PENDING", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED")
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
BAR_WIDTH = 30


# ---------------------------------------------------------------------------- errors


class CliError(Exception):
    """An error to print on one line, with the process exit code it maps to."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnreachableError(CliError):
    exit_code = 2


class ApiError(CliError):
    """The service answered with an error status; ``detail`` is its ``{"detail": ...}``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {describe_detail(detail)}")
        self.status = status
        self.detail = detail
        self.exit_code = 1 if status < 500 else 2


def describe_detail(detail: Any) -> str:
    """One line from an error ``detail``: a string, or FastAPI's list of ``{loc, msg, type}``."""
    if isinstance(detail, list):
        parts = []
        for problem in detail:
            if isinstance(problem, dict):
                loc = ".".join(str(p) for p in problem.get("loc", []) if p != "body")
                parts.append(f"{loc}: {problem.get('msg', '')}" if loc else str(problem.get("msg", "")))
            else:
                parts.append(str(problem))
        return "; ".join(parts)
    if isinstance(detail, str):
        return detail
    return json.dumps(detail)


# ---------------------------------------------------------------------------- HTTP


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """How the client talks HTTP (tests substitute their own)."""

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        """One request; any status is returned, connection failures raise UnreachableError."""
        ...

    def stream(self, url: str, headers: Mapping[str, str], timeout: float) -> Iterator[str]:
        """The lines of a streamed answer as they arrive; error statuses raise ApiError."""
        ...


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, BaseException):
        return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


def _error_from(status: int, body: bytes) -> ApiError:
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "detail" in payload:
        return ApiError(status, payload["detail"])
    if isinstance(payload, dict) and "message" in payload:
        return ApiError(status, payload["message"])
    text = body.decode("utf-8", "replace").strip()[:200]
    return ApiError(status, text or http.client.responses.get(status, "error"))


class UrllibTransport:
    """HTTP over urllib (follows redirects, honours the usual proxy variables)."""

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        req = urlrequest.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310 (http(s) only, see Client)
        try:
            with urlrequest.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urlerror.HTTPError as exc:
            with exc:
                return HttpResponse(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
        except (urlerror.URLError, OSError, http.client.HTTPException) as exc:
            raise UnreachableError(f"cannot reach {_origin(url)} ({_reason(exc)})") from None

    def stream(self, url: str, headers: Mapping[str, str], timeout: float) -> Iterator[str]:
        req = urlrequest.Request(url, headers=dict(headers))  # noqa: S310
        try:
            resp = urlrequest.urlopen(req, timeout=timeout)  # noqa: S310
        except urlerror.HTTPError as exc:
            with exc:
                raise _error_from(exc.code, exc.read()) from None
        except (urlerror.URLError, OSError, http.client.HTTPException) as exc:
            raise UnreachableError(f"cannot reach {_origin(url)} ({_reason(exc)})") from None
        with resp:
            try:
                for raw in resp:
                    yield raw.decode("utf-8", "replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as exc:
                raise UnreachableError(f"the stream from {_origin(url)} broke ({_reason(exc)})") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---------------------------------------------------------------------------- client


@dataclasses.dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a task's stream."""

    id: int | None
    data: dict[str, Any]


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream (``id:`` and ``data:`` fields; comments skipped)."""
    event_id: int | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    yield Event(event_id, payload)
            event_id, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "id":
            try:
                event_id = int(value.strip())
            except ValueError:
                event_id = None


class Client:
    """The task API over HTTP."""

    def __init__(
        self, base_url: str, api_key: str | None = None, *, transport: Transport | None = None, timeout: float = 30.0
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(f"invalid service URL {base_url!r}: expected http(s)://host[:port]")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.transport: Transport = transport or UrllibTransport()
        self.timeout = timeout

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "taskrunner-cli"}
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        return headers

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        send = self._headers()
        send.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            send["Content-Type"] = "application/json"
        response = self.transport.request(method, url, send, data, self.timeout)
        if response.status >= 400:
            raise _error_from(response.status, response.body)
        if not response.body:
            return None
        try:
            return json.loads(response.body)
        except ValueError:
            raise CliError(f"the service answered {method} {path} with something that is not JSON") from None

    def submit(
        self,
        name: str,
        parameters: Mapping[str, Any],
        *,
        callback_url: str | None = None,
        delay_seconds: int | None = None,
        max_attempts: int | None = None,
        priority: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "parameters": dict(parameters)}
        if callback_url:
            body["callback_url"] = callback_url
        if delay_seconds:
            body["delay_seconds"] = delay_seconds
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        if priority:
            body["priority"] = True
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        result: dict[str, Any] = self.call("POST", "/api/tasks", body=body, headers=headers)
        return result

    def state(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/api/tasks/{quote(task_id, safe='')}/state")
        return result

    def list_tasks(
        self,
        *,
        status: str | None = None,
        active: bool = False,
        name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        query = {"status": status, "active": "true" if active else None, "name": name, "limit": limit, "cursor": cursor}
        result: dict[str, Any] = self.call("GET", "/api/tasks", query=query)
        return result

    def cancel(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/api/tasks/{quote(task_id, safe='')}/cancel")
        return result

    def task_types(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/api/task-types")["task_types"]
        return result

    def stream_url(self, link: str) -> str:
        """A task's ``links.stream``: absolute on AWS (the stream function), else a path of this service."""
        if link.startswith(("http://", "https://")):
            return link
        return self.base_url + "/" + link.lstrip("/")

    def events(self, link: str, last_event_id: int | None = None, *, timeout: float = 60.0) -> Iterator[Event]:
        """The task's status events, from after ``last_event_id`` when resuming."""
        headers = self._headers("text/event-stream")
        headers["Cache-Control"] = "no-cache"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        return parse_sse(self.transport.stream(self.stream_url(link), headers, timeout))


# ---------------------------------------------------------------------------- following


def percent_of(task: Mapping[str, Any]) -> float:
    if task.get("status") == "COMPLETED":
        return 100.0
    progress = task.get("progress") or {}
    value = progress.get("percent") if isinstance(progress, dict) else None
    if not isinstance(value, int | float):
        return 0.0
    return max(0.0, min(100.0, float(value)))


def progress_line(task: Mapping[str, Any], width: int = BAR_WIDTH, *, status: bool = True) -> str:
    """``[#########---------]  45.0%  RUNNING    slept 9 of 20 s``"""
    percent = percent_of(task)
    filled = round(width * percent / 100)
    progress = task.get("progress") or {}
    message = (progress.get("message") if isinstance(progress, dict) else None) or ""
    line = f"[{'#' * filled}{'-' * (width - filled)}] {percent:5.1f}%"
    if status:
        line += f"  {task.get('status', '?'):<9}"
    return f"{line}  {message}".rstrip()


class ProgressDisplay:
    """A progress bar redrawn in place on a terminal; one line per change otherwise."""

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._last = ""
        self._drawn = 0

    def update(self, task: Mapping[str, Any]) -> None:
        line = progress_line(task)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self.out.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = 0


def follow(
    client: Client,
    task: Mapping[str, Any],
    display: ProgressDisplay,
    *,
    max_failures: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Follow a task's stream until it ends, drawing its progress; its final state.

    Resumes with Last-Event-ID when the stream ends or breaks, and asks for a fresh stream
    link (a new token) when the old one is refused."""
    task_id = str(task["task_id"])
    links = task.get("links") or {}
    link = links.get("stream") if isinstance(links, dict) else None
    if not link:
        link = client.state(task_id)["links"]["stream"]
    last_id: int | None = None
    failures = 0
    try:
        while True:
            try:
                received = False
                for event in client.events(link, last_id):
                    received = True
                    failures = 0
                    if event.id is not None:
                        last_id = event.id
                    display.update(event.data)
                    if event.data.get("status") in TERMINAL:
                        return dict(event.data)
                # The stream ended before the task did (its time limit, a proxy): where is the task?
                current = client.state(task_id)
                display.update(current)
                if current.get("status") in TERMINAL:
                    return current
                link = current["links"]["stream"]
                if not received:
                    failures += 1
                    if failures > max_failures:
                        raise UnreachableError(f"the stream of task {task_id} keeps ending without news")
                    sleep(min(5.0, 0.5 * 2**failures))
            except ApiError as exc:
                if exc.status not in (401, 403) or failures >= max_failures:
                    raise
                failures += 1
                link = client.state(task_id)["links"]["stream"]  # the token expired: a fresh one
            except UnreachableError:
                failures += 1
                if failures > max_failures:
                    raise
                sleep(min(5.0, 0.5 * 2**failures))
    finally:
        display.finish()


# ---------------------------------------------------------------------------- output


def compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def format_state(task: Mapping[str, Any]) -> str:
    rows: list[tuple[str, str]] = [
        ("task", str(task.get("task_id", ""))),
        ("type", str(task.get("name", ""))),
        (
            "status",
            str(task.get("status", ""))
            + ("  (cancel requested)" if task.get("cancel_requested") and task.get("status") not in TERMINAL else ""),
        ),
        ("progress", progress_line(task, status=False)),
        ("attempts", f"{task.get('attempts', 0)} of {task.get('max_attempts', '?')}"),
        ("parameters", compact(task.get("parameters", {}))),
    ]
    if task.get("metadata"):
        rows.append(("metadata", compact(task["metadata"])))
    if task.get("result") is not None:
        rows.append(("result", compact(task["result"])))
    error = task.get("error")
    if isinstance(error, dict):
        rows.append(("error", f"{error.get('type', 'Error')}: {error.get('message', '')}"))
    for label, key in (
        ("created", "created_at"),
        ("started", "started_at"),
        ("updated", "updated_at"),
        ("completed", "completed_at"),
        ("next attempt", "next_attempt_at"),
    ):
        if task.get(key):
            rows.append((label, str(task[key])))
    callback = task.get("callback")
    if isinstance(callback, dict):
        text = f"{callback.get('url')}  {callback.get('status')}, {callback.get('attempts', 0)} attempt(s)"
        if callback.get("delivered_at"):
            text += f", delivered {callback['delivered_at']}"
        if callback.get("last_error"):
            text += f", last error: {callback['last_error']}"
        rows.append(("callback", text))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def format_list(page: Mapping[str, Any]) -> str:
    tasks = page.get("tasks", [])
    if not tasks:
        return "no tasks"
    rows = [
        [t["task_id"], t["status"], t["name"], f"{percent_of(t):.0f}%", str(t.get("created_at", ""))] for t in tasks
    ]
    return format_table(["TASK", "STATUS", "TYPE", "PROGRESS", "CREATED"], rows, right=[3])


def schema_type(schema: Mapping[str, Any]) -> str:
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        kinds = [schema_type(o) for o in options if isinstance(o, dict) and o.get("type") != "null"]
        nullable = any(isinstance(o, dict) and o.get("type") == "null" for o in options)
        return "|".join(kinds) + ("?" if nullable else "") if kinds else "any"
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"{schema_type(items) if isinstance(items, dict) else 'any'}[]"
    return str(kind) if kind else "any"


def parameters_summary(schema: Mapping[str, Any]) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return "none"
    required = set(schema.get("required") or [])
    parts = []
    for name, prop in properties.items():
        text = f"{name}{'*' if name in required else ''}: {schema_type(prop if isinstance(prop, dict) else {})}"
        if isinstance(prop, dict) and prop.get("default") is not None:
            text += f"={compact(prop['default'])}"
        parts.append(text)
    return ", ".join(parts)


def format_types(types: Sequence[Mapping[str, Any]]) -> str:
    blocks = []
    for t in types:
        lines = [f"{t['name']}  (queue {t.get('queue', '?')}, timeout {t.get('timeout_seconds', '?')} s)"]
        if t.get("description"):
            lines.append(f"    {t['description']}")
        lines.append(f"    parameters: {parameters_summary(t.get('parameters_schema') or {})}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n\n(* required)"


# ---------------------------------------------------------------------------- arguments


def key_value(text: str) -> tuple[str, Any]:
    """``key=value``: the value as JSON when it parses (``5``, ``true``, ``[1,2]``), else the string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def status_name(text: str) -> str:
    upper = text.strip().upper()
    if upper not in STATUSES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(STATUSES)}")
    return upper


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    # The connection options are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"service URL (env TASKRUNNER_URL; default {DEFAULT_URL})"
    )
    common.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="API key, sent as X-Api-Key (env TASKRUNNER_API_KEY; default: .local/runner.json's)",
    )
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait for an answer (default 30)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the service's JSON instead of text"
    )

    parser = argparse.ArgumentParser(
        prog="taskrunner",
        parents=[common],
        description="Submit, follow, list and cancel tasks of a taskrunner service.",
        epilog="Exit codes: 0 ok; 1 refused (4xx) or the task FAILED/CANCELLED; 2 unreachable or server error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser(
        "submit",
        parents=[common],
        help="submit a task",
        description="Submit a task: taskrunner submit sleep seconds=5 --follow",
    )
    submit.add_argument("type", help="task type (see: taskrunner types)")
    submit.add_argument(
        "params",
        nargs="*",
        type=key_value,
        metavar="key=value",
        help="a parameter; the value is JSON when it parses, else a string",
    )
    submit.add_argument(
        "--parameters",
        type=json_object,
        default=None,
        metavar="JSON",
        help="parameters as a JSON object (key=value pairs override)",
    )
    submit.add_argument("--callback", metavar="URL", help="URL that receives the result as a signed POST")
    submit.add_argument("--delay", type=int, default=None, metavar="SECONDS", help="start no sooner than this")
    submit.add_argument("--max-attempts", type=positive_int, default=None, metavar="N")
    submit.add_argument("--priority", action="store_true", help="use the high-priority queue")
    submit.add_argument(
        "--idempotency-key", metavar="KEY", help="submitting again with the same key returns the same task"
    )
    submit.add_argument(
        "--follow", "-f", action="store_true", help="show live progress until the task ends, then print its result"
    )

    state = commands.add_parser("state", parents=[common], help="show a task's current state")
    state.add_argument("task_id", metavar="TASK_ID")

    listing = commands.add_parser("list", parents=[common], help="list tasks, newest first")
    listing.add_argument("--status", type=status_name, help="only tasks in this status")
    listing.add_argument("--active", action="store_true", help="only PENDING, RUNNING and RETRYING tasks")
    listing.add_argument("--name", help="only tasks of this type")
    listing.add_argument("--limit", type=positive_int, default=None, help="tasks per page (1-100, default 20)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a task")
    cancel.add_argument("task_id", metavar="TASK_ID")

    commands.add_parser("types", parents=[common], help="list the task types and their parameters")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``key=value`` pairs of ``submit`` may also follow its options."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "submit" and not any(item.startswith("-") for item in extra):
        try:
            args.params = [*args.params, *(key_value(item) for item in extra)]
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument key=value: {exc}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def local_api_key(directory: Path | None = None) -> str | None:
    """The local runner's development key, from ``.local/runner.json`` when it is there."""
    path = (directory or Path.cwd()) / LOCAL_STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    key = data.get("api_key") if isinstance(data, dict) else None
    return key if isinstance(key, str) and key else None


@dataclasses.dataclass(frozen=True)
class Options:
    url: str
    api_key: str | None
    timeout: float
    json: bool


def resolve_options(args: argparse.Namespace, env: Mapping[str, str]) -> Options:
    url = getattr(args, "url", None) or env.get("TASKRUNNER_URL") or DEFAULT_URL
    api_key = getattr(args, "api_key", None) or env.get("TASKRUNNER_API_KEY") or local_api_key()
    return Options(
        url=url, api_key=api_key, timeout=float(getattr(args, "timeout", 30.0)), json=bool(getattr(args, "json", False))
    )


# ---------------------------------------------------------------------------- commands


def run(args: argparse.Namespace, client: Client, opts: Options, out: TextIO, err: TextIO) -> int:
    def emit(value: Any) -> None:
        out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    if args.command == "submit":
        parameters = dict(args.parameters or {})
        parameters.update(dict(args.params))
        accepted = client.submit(
            args.type,
            parameters,
            callback_url=args.callback,
            delay_seconds=args.delay,
            max_attempts=args.max_attempts,
            priority=args.priority,
            idempotency_key=args.idempotency_key,
        )
        task_id = accepted["task_id"]
        if not args.follow:
            if opts.json:
                emit(accepted)
            else:
                out.write(f"{task_id}\n")
                err.write(
                    f"accepted {accepted.get('name', args.type)} task {task_id} ({accepted.get('status')}); "
                    f"see: taskrunner state {task_id}\n"
                )
            return 0
        err.write(
            f"accepted {accepted.get('name', args.type)} task {task_id}; following it "
            "(Ctrl-C stops following, not the task)\n"
        )
        final = follow(client, accepted, ProgressDisplay(err))
        return report_final(final, opts, out, err)

    if args.command == "state":
        task = client.state(args.task_id)
        if opts.json:
            emit(task)
        else:
            out.write(format_state(task) + "\n")
        return 0

    if args.command == "list":
        page = client.list_tasks(
            status=args.status, active=args.active, name=args.name, limit=args.limit, cursor=args.cursor
        )
        if opts.json:
            emit(page)
        else:
            out.write(format_list(page) + "\n")
            if page.get("next_cursor"):
                err.write(f"more: add --cursor {page['next_cursor']}\n")
        return 0

    if args.command == "cancel":
        task = client.cancel(args.task_id)
        if opts.json:
            emit(task)
        elif task.get("status") == "CANCELLED":
            out.write(f"{task['task_id']} CANCELLED\n")
        else:
            out.write(
                f"{task['task_id']} {task.get('status')}: cancellation requested; "
                "it stops at its next progress report\n"
            )
        return 0

    if args.command == "types":
        types = client.task_types()
        if opts.json:
            emit({"task_types": types})
        else:
            out.write(format_types(types) + "\n")
        return 0
    raise CliError(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses it first


def report_final(task: Mapping[str, Any], opts: Options, out: TextIO, err: TextIO) -> int:
    status = task.get("status")
    if opts.json:
        out.write(json.dumps(task, indent=2, ensure_ascii=False) + "\n")
    elif status == "COMPLETED":
        out.write(json.dumps(task.get("result"), indent=2, ensure_ascii=False) + "\n")
    if status == "COMPLETED":
        return 0
    error = task.get("error") or {}
    reason = f": {error.get('type', 'Error')}: {error.get('message', '')}" if isinstance(error, dict) and error else ""
    err.write(f"task {task.get('task_id')} {status}{reason}\n")
    return 1


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: Transport | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``taskrunner`` console script; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = parse_args(argv)
    opts = resolve_options(args, os.environ if env is None else env)
    try:
        client = Client(opts.url, opts.api_key, transport=transport, timeout=opts.timeout)
        return run(args, client, opts, out, err)
    except ApiError as exc:
        hint = ""
        if exc.status == 401:
            hint = " (pass --api-key or set TASKRUNNER_API_KEY)"
        elif exc.status >= 500:
            hint = " (the service is failing; try again)"
        err.write(f"taskrunner: error {exc.message}{hint}\n")
        return exc.exit_code
    except UnreachableError as exc:
        err.write(f"taskrunner: {exc.message}; is the service running? (--url or TASKRUNNER_URL)\n")
        return exc.exit_code
    except CliError as exc:
        err.write(f"taskrunner: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("\ntaskrunner: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
