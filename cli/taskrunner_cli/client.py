"""The task API over HTTP (httpx), and the errors the command line maps to exit codes."""

from __future__ import annotations

import dataclasses
import http.client
import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

import httpx

from . import __version__
from .sse import Event, parse_sse

# Exit codes (README "Command-line client").
EXIT_OK = 0
EXIT_TASK_FAILED = 1  # the task ended FAILED or CANCELLED
EXIT_USAGE = 2  # bad command line, unknown or ambiguous task id, a request the service refused (4xx)
EXIT_UNAVAILABLE = 3  # cannot reach the service, it is failing (5xx), or the key is refused (401/403)


class CliError(Exception):
    """An error to print on one line, with the process exit code it maps to."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnreachableError(CliError):
    exit_code = EXIT_UNAVAILABLE


class ApiError(CliError):
    """The service answered with an error status; ``detail`` is its ``{"detail": ...}``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {describe_detail(detail)}")
        self.status = status
        self.detail = detail
        self.exit_code = EXIT_UNAVAILABLE if status >= 500 or status in (401, 403) else EXIT_USAGE


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


def error_from(status: int, body: bytes) -> ApiError:
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


# ---------------------------------------------------------------------------- transport


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


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def reason(exc: BaseException) -> str:
    """The most specific words of a transport failure: ``Connection refused`` rather than ``[Errno 111] ...``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    return text or type(exc).__name__


class HttpxTransport:
    """HTTP over httpx: one connection pool per command, honours the usual proxy variables.

    Redirects of a stream (on AWS the API answers a stream with a 307 to the stream
    function's URL) are followed by hand: Last-Event-ID goes along, the API key does not
    leave its origin."""

    max_redirects = 5

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=True)

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        try:
            response = self.http.request(method, url, headers=dict(headers), content=body, timeout=timeout)
        except httpx.TransportError as exc:
            raise UnreachableError(f"cannot reach {origin(url)} ({reason(exc)})") from None
        return HttpResponse(response.status_code, dict(response.headers), response.content)

    def stream(self, url: str, headers: Mapping[str, str], timeout: float) -> Iterator[str]:
        send = dict(headers)
        for _ in range(self.max_redirects + 1):
            request = self.http.build_request("GET", url, headers=send, timeout=timeout)
            try:
                response = self.http.send(request, stream=True, follow_redirects=False)
            except httpx.TransportError as exc:
                raise UnreachableError(f"cannot reach {origin(url)} ({reason(exc)})") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    target = urljoin(url, response.headers["location"])
                    if origin(target) != origin(url):
                        send = {k: v for k, v in send.items() if k.lower() != "x-api-key"}
                    url = target
                    continue
                if response.status_code >= 400:
                    raise error_from(response.status_code, response.read())
                try:
                    yield from response.iter_lines()
                except httpx.TransportError as exc:
                    raise UnreachableError(f"the stream from {origin(url)} broke ({reason(exc)})") from None
                return
            finally:
                response.close()
        raise UnreachableError(f"the stream of {origin(url)} redirects more than {self.max_redirects} times")

    def close(self) -> None:
        self.http.close()


# ---------------------------------------------------------------------------- client


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
        self.transport: Transport = transport or HttpxTransport()
        self.timeout = timeout

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": f"taskrunner-cli/{__version__}"}
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
            kept = {k: v for k, v in query.items() if v is not None}
            if kept:
                url += "?" + str(httpx.QueryParams(kept))
        send = self._headers()
        send.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            send["Content-Type"] = "application/json"
        response = self.transport.request(method, url, send, data, self.timeout)
        if response.status >= 400:
            raise error_from(response.status, response.body)
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

    def retry(self, task_id: str) -> dict[str, Any]:
        """Run a FAILED or CANCELLED task again as a new task (202, the body of a submit)."""
        result: dict[str, Any] = self.call("POST", f"/api/tasks/{quote(task_id, safe='')}/retry")
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
        """The task's status events, from after ``last_event_id`` when resuming (the Last-Event-ID header)."""
        headers = self._headers("text/event-stream")
        headers["Cache-Control"] = "no-cache"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        return parse_sse(self.transport.stream(self.stream_url(link), headers, timeout))
