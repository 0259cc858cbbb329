"""A real HTTP server on 127.0.0.1 that records callbacks and answers from a script."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.http_server import LoopbackServer


class CallbackReceiver(LoopbackServer):
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body, "status": status}
                    )
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"received": true}')

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, path="/hook")

    def delivered(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 20.0, *, ok_only: bool = True) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered() if ok_only else list(self.requests)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} callbacks within {timeout} s, got {len(self.requests)}")

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.delivered()]


def poll(condition: Any, timeout: float = 20.0, interval: float = 0.05, message: str = "condition") -> Any:
    """Poll until ``condition()`` returns something truthy; return it (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout} s (last value: {last!r})")
