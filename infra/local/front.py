"""The one HTTP front on 127.0.0.1:8000: API Gateway (HTTP API, payload 2.0) events into
the API function; streaming requests proxied to the stream function, as the Function URL
would serve them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx

from .pool import FunctionPool, InvocationError

log = logging.getLogger("taskrunner.local")
STREAM_PATH = re.compile(r"^/api/tasks/[^/]+(/stream)?$")
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's payload limit
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml", "+json", "+xml")


def wants_stream(method: str, path: str, headers: dict[str, str]) -> bool:
    if method != "GET" or not STREAM_PATH.match(path):
        return False
    accept = headers.get("accept", "")
    return "text/event-stream" in accept or "application/json" not in accept


def http_api_event(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str
) -> dict[str, Any]:
    now = time.time()
    text_body = None
    is_b64 = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_b64 = base64.b64encode(body).decode(), True
    query_params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
    cookies = [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()]
    return {
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": cookies or None,
        "headers": {k: v for k, v in headers.items() if k != "cookie"},
        "queryStringParameters": query_params or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "ANY /{proxy+}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "pathParameters": {"proxy": path.lstrip("/")},
        "body": text_body,
        "isBase64Encoded": is_b64,
    }


class Front:
    """``stream_limit``: the stream function's reserved concurrency; a stream over it is
    answered 429, as a throttled Function URL answers. ``body_timeout``: a request body that
    does not arrive in full within it (shorter than its Content-Length, or trickling) gets 408.
    ``metrics``: the runner's Prometheus exposition, served on ``GET /metrics`` (metrics.py)."""

    def __init__(
        self,
        api: FunctionPool,
        stream_base: str | None,
        *,
        stream_limit: int = 100,
        body_timeout: float = 10.0,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.stream_base = stream_base
        self.stream_limit = stream_limit
        self.body_timeout = body_timeout
        self.open_streams = 0
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._client = httpx.AsyncClient(
                        timeout=httpx.Timeout(10.0, read=None),
                        limits=httpx.Limits(max_connections=self.stream_limit + 10, max_keepalive_connections=20),
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self._client is not None:
                        await self._client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        if path == "/metrics" and self.metrics is not None:
            await self._metrics(method, send)
            return
        if self.stream_base and wants_stream(method, path, headers):
            if self.open_streams >= self.stream_limit:
                await self._reply(
                    send, 429, {"message": "Too Many Requests: every stream environment is busy"}, {"retry-after": "1"}
                )
                return
            self.open_streams += 1
            try:
                await self._proxy_stream(path, query, headers, receive, send)
            finally:
                self.open_streams -= 1
            return
        body = b""
        deadline = time.monotonic() + self.body_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await self._reply(send, 408, {"message": "Request Timeout: the body did not arrive in full"})
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_PAYLOAD:
                await self._reply(send, 413, {"message": "Request Entity Too Large"})
                return
            if not message.get("more_body"):
                break
        client = scope.get("client") or ("127.0.0.1", 0)
        event = http_api_event(method, path, query, headers, body, client[0])
        try:
            result = await self.api.invoke(event)
        except InvocationError as exc:
            if exc.kind == "RequestTooLarge":
                # the event is over Lambda's 6 MB synchronous payload limit: API Gateway answers 413
                await self._reply(send, 413, {"message": "Request Entity Too Large"})
            elif exc.kind == "Timeout":
                await self._reply(send, 504, {"message": "Endpoint request timed out"})
            else:
                log.error("API function failed: %s", exc)
                await self._reply(send, 502, {"message": "Internal Server Error"})
            return
        await self._send_result(send, result)

    async def _metrics(self, method: str, send: Any) -> None:
        from .metrics import CONTENT_TYPE

        if method not in ("GET", "HEAD"):
            await self._reply(send, 405, {"message": "Method Not Allowed"}, {"allow": "GET, HEAD"})
            return
        assert self.metrics is not None
        body = await asyncio.to_thread(self.metrics)
        headers = [(b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _send_result(self, send: Any, result: dict[str, Any]) -> None:
        status = int(result.get("statusCode", 200))
        out_headers = [(k.encode(), str(v).encode()) for k, v in (result.get("headers") or {}).items()]
        for k, values in (result.get("multiValueHeaders") or {}).items():
            out_headers += [(k.encode(), str(v).encode()) for v in values]
        for cookie in result.get("cookies") or []:
            out_headers.append((b"set-cookie", cookie.encode()))
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": body})

    async def _reply(
        self, send: Any, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    async def _proxy_stream(self, path: str, query: str, headers: dict[str, str], receive: Any, send: Any) -> None:
        assert self._client is not None
        url = f"{self.stream_base}{path}" + (f"?{query}" if query else "")
        forward = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}

        async def pump() -> None:
            try:
                async with self._client.stream("GET", url, headers=forward) as upstream:  # type: ignore[union-attr]
                    passthrough = [
                        (k.encode(), v.encode())
                        for k, v in upstream.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding", "connection")
                    ]
                    await send({"type": "http.response.start", "status": upstream.status_code, "headers": passthrough})
                    async for chunk in upstream.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
            except httpx.HTTPError as exc:
                log.error("stream function unreachable: %s", exc)
                await self._reply(send, 502, {"message": "stream function unavailable"})

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return

        pumping = asyncio.create_task(pump())
        watching = asyncio.create_task(watch_disconnect())
        _, pending = await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
