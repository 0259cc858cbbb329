"""A tiny stand-in for a deployed taskrunner API on 127.0.0.1, with switches that break one
thing at a time (for the smoke test's own tests).

It answers like AWS when ``redirect`` is set: the stream route answers 307 to a "Function
URL" (here ``/fn/...`` of the same server) carrying a token, which takes no API key."""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.http_server import LoopbackServer

KEY = "tr_fake0000_very-secret-part"


class FakeApi(LoopbackServer):
    def __init__(self) -> None:
        self.health = "ok"  # "ok", "sqs-down" (503 JSON), "crash" (500 text, as a failing Lambda)
        self.redirect = False  # stream via a 307 to the "Function URL", as on AWS
        self.stream = "ok"  # "ok", "truncated" (ends while RUNNING), "failed" (ends FAILED), "ignores-last-id"
        self.wrong_result = False  # sum adds one too many
        self.cancel = "ok"  # "ok", "ignored" (answers RUNNING, nothing requested)
        self.callback = "DELIVERED"  # what the callback of a task with callback_url ends as
        self.attempts_reported = True  # /state carries attempt_history (False: a server from before it)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.seen: list[dict[str, Any]] = []  # {"method", "path", "headers"} of each request
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)

    # ------------------------------------------------------------------ answers

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("content-type", "text/plain" if isinstance(body, str) else "application/json")
        h.send_header("content-length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, parse_qs(parts.query)
        with self._lock:
            self.seen.append({"method": method, "path": h.path, "headers": dict(h.headers)})
        body: Any = None
        if method == "POST":
            raw = h.rfile.read(int(h.headers.get("content-length", "0")))
            body = json.loads(raw) if raw else {}
        if path == "/health":
            if self.health == "crash":
                return self.send(h, 500, "Internal Server Error")
            down = self.health == "sqs-down"
            checks = {"dynamodb": "ok", "sqs": "unavailable: timed out" if down else "ok"}
            return self.send(h, 503 if down else 200, {"status": "unavailable" if down else "ok", "checks": checks})
        stream = re.fullmatch(r"/fn/api/tasks/([^/]+)", path)
        if stream and method == "GET":
            task = self.tasks.get(stream.group(1))
            if task is None or query.get("token") != [f"tok-{task['task_id']}"]:
                return self.send(h, 401, {"detail": "this endpoint takes the stream link's token"})
            return self.events(h, task)
        if not path.startswith("/api/"):
            return self.send(h, 404, {"detail": "Not Found"})
        if h.headers.get("x-api-key") != KEY:
            return self.send(h, 401, {"detail": "missing or invalid API key"})
        if path == "/api/task-types":
            names = ["fail", "sleep", "sum"]
            return self.send(h, 200, {"task_types": [{"name": n} for n in names]})
        if path == "/api/tasks" and method == "POST":
            return self.submit(h, body)
        if path == "/api/tasks" and method == "GET":
            limit = int(query.get("limit", ["20"])[0])
            newest = list(reversed(self.tasks.values()))[:limit]
            return self.send(h, 200, {"tasks": newest, "total": len(newest), "next_cursor": None})
        found = re.fullmatch(r"/api/tasks/([^/]+)(/state|/cancel|/retry)?", path)
        task = self.tasks.get(found.group(1)) if found else None
        if task is None:
            return self.send(h, 404, {"detail": "task not found"})
        suffix = found.group(2) if found else None
        if suffix == "/cancel" and method == "POST":
            return self.cancel_task(h, task)
        if suffix == "/retry" and method == "POST":
            return self.retry_task(h, task)
        if suffix == "/state" and not self.attempts_reported:
            return self.send(h, 200, {k: v for k, v in task.items() if k != "attempt_history"})
        if suffix == "/state" or "text/event-stream" not in h.headers.get("accept", ""):
            if task["name"] == "sleep" and task["cancel_requested"]:
                task.update(status="CANCELLED", version=task["version"] + 1)
            return self.send(h, 200, dict(task))
        if self.redirect:
            location = f"{self.url}/fn/api/tasks/{task['task_id']}?token=tok-{task['task_id']}"
            return self.send(h, 307, "", {"location": location})
        return self.events(h, task)

    def submit(self, h: BaseHTTPRequestHandler, body: dict[str, Any], retry_of: str | None = None) -> None:
        task_id = str(uuid.uuid4())
        task: dict[str, Any] = {
            "task_id": task_id,
            "name": body["name"],
            "status": "RUNNING" if body["name"] == "sleep" else "COMPLETED",
            "parameters": body.get("parameters", {}),
            "result": None,
            "error": None,
            "attempts": 1,
            "cancel_requested": False,
            "version": 2 if body["name"] == "sleep" else 3,
            "callback": None,
            "attempt_history": [],
            "retry_of": retry_of,
        }
        if body["name"] == "sum":
            total = sum(body["parameters"]["numbers"]) + (1 if self.wrong_result else 0)
            task["result"] = {"operation": "sum", "result": total}
        if body.get("callback_url"):
            task["callback"] = {"url": body["callback_url"], "status": self.callback, "attempts": 1, "last_error": None}
        self.tasks[task_id] = task
        links = {
            "self": f"/api/tasks/{task_id}",
            "state": f"/api/tasks/{task_id}/state",
            "stream": f"/api/tasks/{task_id}?token=tok-{task_id}",
            "cancel": f"/api/tasks/{task_id}/cancel",
        }
        self.send(h, 202, {"task_id": task_id, "name": body["name"], "status": "PENDING", "links": links})

    def retry_task(self, h: BaseHTTPRequestHandler, task: dict[str, Any]) -> None:
        """POST /api/tasks/{id}/retry: a FAILED or CANCELLED task again as a new one (202, a submit's body)."""
        if task["status"] not in ("FAILED", "CANCELLED"):
            return self.send(
                h, 409, {"detail": f"task {task['task_id']} is {task['status']}; only FAILED or CANCELLED"}
            )
        callback = task["callback"]["url"] if task["callback"] else None
        return self.submit(
            h,
            {"name": task["name"], "parameters": task["parameters"], "callback_url": callback},
            retry_of=task["task_id"],
        )

    def cancel_task(self, h: BaseHTTPRequestHandler, task: dict[str, Any]) -> None:
        if task["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return self.send(h, 409, {"detail": f"task {task['task_id']} already ended"})
        if self.cancel == "ok":
            task["cancel_requested"] = True
        return self.send(h, 200, dict(task))

    def events(self, h: BaseHTTPRequestHandler, task: dict[str, Any]) -> None:
        history = [
            {**task, "status": "PENDING", "result": None, "version": 1},
            {**task, "status": "RUNNING", "result": None, "version": 2},
            dict(task),
        ]
        if self.stream == "truncated":
            history = history[:2]
        elif self.stream == "failed":
            history[-1] = {**task, "status": "FAILED", "result": None, "error": "Boom"}
        last = h.headers.get("last-event-id")
        if last is not None and self.stream != "ignores-last-id":
            history = [e for e in history if e["version"] > int(last)]
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.end_headers()  # HTTP/1.0: the body ends when the connection closes
        h.wfile.write(b"retry: 1000\n\n")
        for event in history:
            h.wfile.write(f"id: {event['version']}\ndata: {json.dumps(event)}\n\n".encode())
            h.wfile.flush()
        if task["callback"]:
            task["version"] = 4  # the callback was delivered after this stream: one more write
