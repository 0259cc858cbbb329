"""Fault injection in front of an AWS endpoint: a proxy that fails chosen calls.

The local runner is pointed at the proxy (``AWS_ENDPOINT_URL``); the proxy forwards every
request to the real endpoint (a moto server) unless a fault matches it, and records every
call (service, action, resources, status), so a test can tell what reached the endpoint.

    with FaultProxy(moto_url) as proxy:
        fault = proxy.inject(Fault("sqs", actions={"SendMessage"}, resources={queue_name}))
        ...
        proxy.clear(fault)

A fault answers an AWS error (JSON protocol, as DynamoDB and SQS speak it) without
forwarding, or, with ``after_forward=True``, forwards first and then answers the error:
the call took effect but its response was lost.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.support.http_server import LoopbackServer

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade", "content-length"}
)
SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}


@dataclasses.dataclass
class Fault:
    """Which calls fail and how. ``None`` for actions/resources means every one."""

    service: str
    actions: Iterable[str] | None = None
    resources: Iterable[str] | None = None
    status: int = 500
    code: str = "InternalServerError"
    message: str = "injected fault"
    after_forward: bool = False
    remaining: int | None = None
    hits: int = 0

    def matches(self, call: Call) -> bool:
        if self.service != call.service:
            return False
        if self.actions is not None and call.action not in set(self.actions):
            return False
        return self.resources is None or bool(set(self.resources) & set(call.resources))


@dataclasses.dataclass
class Call:
    at: float
    service: str
    action: str
    resources: tuple[str, ...]
    status: int = 0
    injected: bool = False
    body: bytes = b""


def _resources(data: Any) -> set[str]:
    """Table names and queue names named anywhere in a request body."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("TableName", "QueueName") and isinstance(value, str):
                found.add(value)
            elif key == "QueueUrl" and isinstance(value, str):
                found.add(value.rstrip("/").rsplit("/", 1)[-1])
            else:
                found |= _resources(value)
    elif isinstance(data, list):
        for item in data:
            found |= _resources(item)
    return found


def describe(headers: Any, body: bytes) -> tuple[str, str, tuple[str, ...]]:
    target = headers.get("X-Amz-Target", "")
    prefix, _, action = target.partition(".")
    service = SERVICES.get(prefix, prefix or "other")
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    return service, action, tuple(sorted(_resources(data)))


class FaultProxy(LoopbackServer):
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._calls: list[Call] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                service, action, resources = describe(self.headers, body)
                call = Call(time.monotonic(), service, action, resources, body=body)
                fault = proxy._take_fault(call)
                status, headers, answer = 0, [], b""
                if fault is None or fault.after_forward:
                    status, headers, answer = proxy._forward(self.command, self.path, self.headers, body)
                if fault is not None:
                    call.injected = True
                    status = fault.status
                    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "injected-fault")]
                    answer = json.dumps({"__type": fault.code, "message": fault.message}).encode()
                call.status = status
                with proxy._lock:
                    proxy._calls.append(call)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def __enter__(self) -> FaultProxy:
        proxy: FaultProxy = super().__enter__()
        return proxy

    def _forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _take_fault(self, call: Call) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(call) and (fault.remaining is None or fault.remaining > 0):
                    fault.hits += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, fault: Fault | None = None) -> None:
        with self._lock:
            self._faults = [] if fault is None else [f for f in self._faults if f is not fault]

    def calls(
        self, service: str | None = None, action: str | None = None, resource: str | None = None, since: float = 0.0
    ) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self._calls
                if c.at >= since
                and (service is None or c.service == service)
                and (action is None or c.action == action)
                and (resource is None or resource in c.resources)
            ]
