"""Smoke test of a running taskrunner stack, meant for right after ``make deploy``.

Longer than ~400 lines: it is one script a user runs after a deploy, and its steps (health,
task types, auth, submit, stream, state, list, cancel, callback) run in order in one class,
each a few requests and their checks; kept in one file so that the whole check reads top to
bottom as it runs.

    python -m infra.smoke --url https://xyz.execute-api.eu-west-1.amazonaws.com --key tr_...
    python -m infra.smoke --url URL --key KEY --callback https://your.receiver/hook --timeout 60 --json

Runs the API's main paths one after the other and prints one line per step,
``PASS  <step>  <detail>`` or ``FAIL  <step>  <why>``, then ``smoke: N passed, M failed``
as the last line. Exit code 0 only if every step passed; 1 if one failed; 2 if the URL
does not answer (or is not a taskrunner). Each step has its own deadline (``--timeout``).
The key may also come from TASKRUNNER_API_KEY; it is never printed in full, nor are the
stream tokens. With ``--json`` the step lines go to stderr and a JSON report to stdout.

The standard library, httpx and the command-line client's SSE parser (taskrunner_cli.sse), so
it runs from the repository's .venv.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO
from urllib.parse import urljoin, urlsplit

import httpx
from taskrunner_cli.sse import raw_events

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
REQUIRED_TYPES = ("sleep", "sum")
USER_AGENT = "taskrunner-smoke/1"


class StepFailed(Exception):
    """A step's check did not hold; the message says why."""


class Unreachable(Exception):
    """The URL does not answer, or is not a taskrunner API: nothing else is worth trying."""


@dataclasses.dataclass
class StepResult:
    step: str
    ok: bool
    detail: str
    seconds: float


def mask_key(key: str) -> str:
    """``tr_ab12cd34_…``: the key's public id, never its secret part."""
    match = re.match(r"^(tr_[^_]+_)", key)
    if match:
        return match.group(1) + "…"
    return (key[:4] + "…") if len(key) > 8 else "…"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def transport_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    # "[Errno 111] Connection refused" -> "Connection refused"
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text)


def body_snippet(response: httpx.Response, limit: int = 160) -> str:
    try:
        text = response.text
    except Exception:
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def expect_status(response: httpx.Response, *expected: int) -> None:
    if response.status_code not in expected:
        want = " or ".join(str(e) for e in expected)
        snippet = body_snippet(response)
        raise StepFailed(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}, "
            f"expected {want}" + (f": {snippet}" if snippet else "")
        )


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise StepFailed(
            f"{response.request.method} {response.request.url.path} did not answer JSON: {body_snippet(response)!r}"
        ) from None


def sse_events(lines: Iterator[str]) -> Iterator[tuple[int | None, Any]]:
    """(id, decoded data) of each Server-Sent Event, parsed by the CLI's parser (taskrunner_cli.sse);
    here data that is not JSON or an id that is not a number fails the step."""
    for event in raw_events(lines):
        try:
            payload = json.loads(event.data)
        except ValueError:
            raise StepFailed(f"an event's data is not JSON: {event.data[:120]!r}") from None
        try:
            event_id = int(event.id) if event.id is not None else None
        except ValueError:
            raise StepFailed(f"an event id is not a number: {event.id!r}") from None
        yield event_id, payload


class Smoke:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        callback: str | None = None,
        step_timeout: float = 60.0,
        out: TextIO = sys.stdout,
        transport: httpx.BaseTransport | None = None,
        follow_stream: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.follow_stream = follow_stream
        self.key = key
        self.callback = callback
        self.step_timeout = step_timeout
        self.out = out
        self.results: list[StepResult] = []
        self.deadline = 0.0
        self.client = httpx.Client(
            base_url=self.url,
            headers={"User-Agent": USER_AGENT},
            timeout=step_timeout,
            follow_redirects=False,
            transport=transport,
        )
        self.numbers = [random.randint(1, 1000) for _ in range(3)]  # noqa: S311 - not a secret
        self.expected_sum = sum(self.numbers)
        self.task_id: str | None = None
        self.stream_via = ""

    # ------------------------------------------------------------------ plumbing

    def redact(self, text: str) -> str:
        if self.key:
            text = text.replace(self.key, mask_key(self.key))
        return re.sub(r"(token=)[^&\s\"']+", r"\1…", text)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StepFailed(f"not done within {self.step_timeout:g} s")
        return left

    def request(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Accept": "application/json", **kw.pop("headers", {})}
        sent_key = self.key if key is None else key
        if sent_key:
            headers["X-Api-Key"] = sent_key
        return self.client.request(method, path, headers=headers, timeout=self.remaining(), **kw)

    def state(self, task_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/api/tasks/{task_id}/state")
        expect_status(response, 200)
        task = json_of(response)
        if not isinstance(task, dict) or task.get("task_id") != task_id:
            raise StepFailed(f"the state of {task_id} is not that task: {str(task)[:120]}")
        return task

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(0.0, self.deadline - time.monotonic())))

    def emit(self, result: StepResult) -> None:
        tag = "PASS" if result.ok else "FAIL"
        line = f"{tag}  {result.step:<9} {result.detail}"
        if result.ok:
            line += f" ({result.seconds:.2f} s)"
        self.out.write(self.redact(line) + "\n")
        self.out.flush()

    def run_step(self, name: str, check: Callable[[], str]) -> bool:
        started = time.monotonic()
        self.deadline = started + self.step_timeout
        try:
            detail, ok = check(), True
        except Unreachable:
            raise
        except StepFailed as exc:
            detail, ok = str(exc), False
        except httpx.TimeoutException:
            detail, ok = f"no answer within {self.step_timeout:g} s", False
        except httpx.HTTPError as exc:
            detail, ok = f"cannot reach {origin(self.url)} ({transport_reason(exc)})", False
        except Exception as exc:  # a smoke test reports, it does not crash
            detail, ok = f"{type(exc).__name__}: {exc}", False
        result = StepResult(name, ok, detail, time.monotonic() - started)
        self.results.append(result)
        self.emit(result)
        return ok

    def skip(self, name: str, why: str) -> None:
        result = StepResult(name, False, f"not run: {why}", 0.0)
        self.results.append(result)
        self.emit(result)

    # ------------------------------------------------------------------ the steps

    def check_health(self) -> str:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Unreachable(f"{self.url!r} is not an http(s) URL (give the stack's ApiUrl output)")
        try:
            response = self.request("GET", "/health", key="")
        except httpx.TimeoutException:
            raise Unreachable(f"{origin(self.url)} did not answer within {self.step_timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {origin(self.url)} ({transport_reason(exc)})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        checks = body.get("checks") if isinstance(body, dict) else None
        if response.status_code not in (200, 503) or not isinstance(checks, dict):
            # Not this API's health answer: every other step would fail the same way.
            answer = f"GET {response.request.url} answered {response.status_code}"
            snippet = body_snippet(response, 80)
            answer += f" {snippet}" if snippet else ""
            if response.status_code in (500, 502, 504):
                raise Unreachable(f"{answer}: the API fails (its function's logs say why)")
            raise Unreachable(f"{answer}: no taskrunner here (is URL the stack's ApiUrl output?)")
        if response.status_code != 200 or body.get("status") != "ok" or any(v != "ok" for v in checks.values()):
            named = ", ".join(f"{k} {v}" for k, v in checks.items())
            raise StepFailed(f"GET /health answered {response.status_code} {body.get('status')}: {named}")
        return "200, " + ", ".join(f"{k} ok" for k in checks)

    def check_task_types(self) -> str:
        response = self.request("GET", "/api/task-types")
        expect_status(response, 200)
        body = json_of(response)
        types = body.get("task_types") if isinstance(body, dict) else None
        if not isinstance(types, list):
            raise StepFailed(f"no task_types list in {str(body)[:120]}")
        names = sorted(str(t.get("name")) for t in types if isinstance(t, dict))
        missing = [n for n in REQUIRED_TYPES if n not in names]
        if missing:
            raise StepFailed(f"missing task types {', '.join(missing)} (listed: {', '.join(names) or 'none'})")
        return f"{len(names)} types: {', '.join(names)}"

    def check_auth(self) -> str:
        answers = []
        for label, key in (("no key", ""), ("a wrong key", "tr_smoke000_not-a-valid-key")):
            response = self.request("GET", "/api/task-types", key=key)
            if response.status_code != 401:
                raise StepFailed(f"GET /api/task-types with {label} answered {response.status_code}, expected 401")
            answers.append(f"401 with {label}")
        return ", ".join(answers)

    def check_submit(self) -> str:
        body: dict[str, Any] = {
            "name": "sum",
            "parameters": {"numbers": self.numbers},
            "metadata": {"source": "smoke"},
        }
        if self.callback:
            body["callback_url"] = self.callback
        response = self.request("POST", "/api/tasks", json=body)
        expect_status(response, 202)
        accepted = json_of(response)
        task_id = accepted.get("task_id") if isinstance(accepted, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise StepFailed(f"no task_id in {str(accepted)[:160]}")
        links = accepted.get("links")
        missing = [k for k in ("self", "state", "stream", "cancel") if not (isinstance(links, dict) and links.get(k))]
        if missing:
            raise StepFailed(f"task {task_id}: links lack {', '.join(missing)}")
        self.task_id = task_id
        extra = f", callback {self.callback}" if self.callback else ""
        numbers = "+".join(str(n) for n in self.numbers)
        return f"202, sum task {task_id} ({numbers}){extra}"

    def open_stream(self, task_id: str, last_event_id: int | None = None) -> httpx.Response:
        """GET /api/tasks/{id} as a stream; a 307 (AWS: the streaming Function URL, with a
        token) is followed by hand so that Last-Event-ID goes along and the key does not."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", "X-Api-Key": self.key}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        request = self.client.build_request("GET", f"/api/tasks/{task_id}", headers=headers, timeout=self.remaining())
        response = self.client.send(request, stream=True)
        self.stream_via = "served by the API"
        if response.status_code in (302, 303, 307, 308):
            location = response.headers.get("location", "")
            response.close()
            if not location:
                raise StepFailed(f"GET /api/tasks/{task_id} answered {response.status_code} without a Location")
            target = urljoin(str(request.url), location)
            if "token=" not in target:
                raise StepFailed(f"the redirect to {origin(target)} carries no stream token")
            del headers["X-Api-Key"]
            request = self.client.build_request("GET", target, headers=headers, timeout=self.remaining())
            response = self.client.send(request, stream=True)
            self.stream_via = f"via 307 to {origin(target)}"
        if response.status_code != 200:
            response.read()
            response.close()
            expect_status(response, 200)
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            response.close()
            raise StepFailed(f"the stream answered content-type {ctype!r}, expected text/event-stream")
        return response

    def read_events(self, response: httpx.Response, task_id: str) -> list[tuple[int | None, dict[str, Any]]]:
        """Events until the terminal one (or the stream's end, or the step's deadline)."""
        events: list[tuple[int | None, dict[str, Any]]] = []

        def lines() -> Iterator[str]:
            for line in response.iter_lines():
                self.remaining()
                yield line

        try:
            for event_id, data in sse_events(lines()):
                if not isinstance(data, dict) or data.get("task_id") != task_id:
                    raise StepFailed(f"an event is not about task {task_id}: {str(data)[:120]}")
                if events and event_id is not None and events[-1][0] is not None and event_id < events[-1][0]:
                    raise StepFailed(f"event ids go backwards: {events[-1][0]} then {event_id}")
                events.append((event_id, data))
                if data.get("status") in TERMINAL:
                    break
        except httpx.TimeoutException:
            last = events[-1][1].get("status") if events else "none"
            raise StepFailed(f"no terminal event within {self.step_timeout:g} s (last status {last})") from None
        except httpx.HTTPError as exc:
            raise StepFailed(f"the stream broke after {len(events)} events ({transport_reason(exc)})") from None
        finally:
            response.close()
        return events

    def check_result(self, task: dict[str, Any], where: str) -> None:
        status = task.get("status")
        if status != "COMPLETED":
            raise StepFailed(f"{where}: status {status}, expected COMPLETED (error: {task.get('error')})")
        result = task.get("result")
        got = result.get("result") if isinstance(result, dict) else None
        if got != self.expected_sum:
            raise StepFailed(f"{where}: result {json.dumps(result)}, expected result {self.expected_sum}")

    def check_stream(self) -> str:
        task_id = self.need_task()
        if not self.follow_stream:
            return self.check_stream_handover(task_id)
        events = self.read_events(self.open_stream(task_id), task_id)
        if not events:
            raise StepFailed("the stream ended without any event")
        last_id, last = events[-1]
        if last.get("status") not in TERMINAL:
            raise StepFailed(
                f"the stream ended after {len(events)} events without the terminal one "
                f"(last status {last.get('status')})"
            )
        self.check_result(last, "terminal event")
        statuses: list[Any] = []
        for _, data in events:
            if not statuses or statuses[-1] != data.get("status"):
                statuses.append(str(data.get("status")))
        detail = f"{len(events)} events {'→'.join(statuses)} {self.stream_via}, result {self.expected_sum}"
        if last_id is None:
            raise StepFailed("the terminal event has no id: a client could not resume with Last-Event-ID")
        if last_id > 0:
            # Resume as EventSource does after a break: only what follows the given id comes again.
            again = self.read_events(self.open_stream(task_id, last_event_id=last_id - 1), task_id)
            # One event, the final state (its id may have grown since: a callback's delivery is a write).
            resumed = [e for e, _ in again]
            if len(again) != 1 or (again[0][0] or 0) < last_id or again[0][1].get("status") != "COMPLETED":
                raise StepFailed(
                    f"resuming with Last-Event-ID {last_id - 1} gave events {resumed}, "
                    f"expected only the final one (id {last_id} or later, COMPLETED)"
                )
            self.check_result(again[0][1], "resumed stream")
            detail += f"; Last-Event-ID {last_id - 1} resumes with event {resumed[0]}"
        return detail

    def check_stream_handover(self, task_id: str) -> str:
        """The API's part of streaming on AWS, without opening the stream: a 307 to the stream
        function's URL with a token for this task (for emulators that do not serve it)."""
        headers = {"Accept": "text/event-stream", "X-Api-Key": self.key}
        response = self.client.get(f"/api/tasks/{task_id}", headers=headers, timeout=self.remaining())
        expect_status(response, 307)
        target = urljoin(str(response.request.url), response.headers.get("location", ""))
        if "token=" not in target or urlsplit(target).scheme not in ("http", "https"):
            raise StepFailed(f"the redirect to {origin(target) or 'nowhere'} carries no stream token")
        return f"307 to {origin(target)} with a stream token (not followed: --no-follow-stream)"

    def check_state(self) -> str:
        task_id = self.need_task()
        task = self.state(task_id)
        self.check_result(task, "state")
        return f"COMPLETED, result {self.expected_sum}, attempts {task.get('attempts')}"

    def check_list(self) -> str:
        task_id = self.need_task()
        response = self.request("GET", "/api/tasks", params={"limit": 5})
        expect_status(response, 200)
        page = json_of(response)
        tasks = page.get("tasks") if isinstance(page, dict) else None
        if not isinstance(tasks, list):
            raise StepFailed(f"no tasks list in {str(page)[:120]}")
        if len(tasks) > 5:
            raise StepFailed(f"limit=5 answered {len(tasks)} tasks")
        ids = [t.get("task_id") for t in tasks if isinstance(t, dict)]
        if task_id not in ids:
            raise StepFailed(f"task {task_id} is not among the {len(ids)} newest tasks")
        return f"{len(ids)} newest task{'s' if len(ids) != 1 else ''}, ours is #{ids.index(task_id) + 1}"

    def check_cancel(self) -> str:
        response = self.request(
            "POST", "/api/tasks", json={"name": "sleep", "parameters": {"seconds": 20}, "metadata": {"source": "smoke"}}
        )
        expect_status(response, 202)
        task_id = json_of(response).get("task_id")
        if not isinstance(task_id, str):
            raise StepFailed("the sleep task got no task_id")
        response = self.request("POST", f"/api/tasks/{task_id}/cancel")
        expect_status(response, 200)
        first = json_of(response)
        answered = first.get("status")
        if answered != "CANCELLED" and not first.get("cancel_requested"):
            raise StepFailed(f"cancel answered status {answered} without cancel_requested")
        how = "CANCELLED at once" if answered == "CANCELLED" else f"{answered} + cancel_requested"
        status = answered
        while status != "CANCELLED":
            if status in TERMINAL:
                raise StepFailed(f"sleep task {task_id} ended {status}, not CANCELLED")
            self.sleep(0.25)
            try:
                status = self.state(task_id).get("status")
            except StepFailed as exc:
                if "not done within" in str(exc):
                    raise StepFailed(f"sleep task {task_id} still {status} after the cancel") from None
                raise
        again = self.request("POST", f"/api/tasks/{task_id}/cancel")
        if again.status_code != 409:
            raise StepFailed(f"cancelling the ended task answered {again.status_code}, expected 409")
        return f"sleep task {task_id}: {how}, then CANCELLED; cancelling again 409"

    def check_callback(self) -> str:
        task_id = self.need_task()
        callback: Any = None
        while True:
            try:
                callback = self.state(task_id).get("callback")
            except StepFailed as exc:
                if "not done within" not in str(exc):
                    raise
                callback = callback if isinstance(callback, dict) else {}
                raise StepFailed(
                    f"callback still {callback.get('status')} after {self.step_timeout:g} s "
                    f"(attempts {callback.get('attempts')}, last error {callback.get('last_error')})"
                ) from None
            if not isinstance(callback, dict):
                raise StepFailed(f"task {task_id} has no callback: {callback!r}")
            status = callback.get("status")
            if status == "DELIVERED":
                return f"DELIVERED to {callback.get('url')} after {callback.get('attempts')} attempt(s)"
            if status == "FAILED":
                raise StepFailed(
                    f"callback FAILED after {callback.get('attempts')} attempts: {callback.get('last_error')}"
                )
            self.sleep(0.25)

    def need_task(self) -> str:
        if self.task_id is None:
            raise StepFailed("no task (submit failed)")
        return self.task_id

    # ------------------------------------------------------------------ the run

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        steps = [
            ("health", self.check_health),
            ("types", self.check_task_types),
            ("auth", self.check_auth),
            ("submit", self.check_submit),
            ("stream", self.check_stream),
            ("state", self.check_state),
            ("list", self.check_list),
            ("cancel", self.check_cancel),
        ]
        if self.callback:
            steps.append(("callback", self.check_callback))
        return steps

    def run(self) -> int:
        """0 if every step passed, 1 if one failed, 2 if the URL did not answer as a taskrunner."""
        try:
            for name, check in self.steps():
                if name not in ("health", "types", "auth", "submit", "cancel") and self.task_id is None:
                    self.skip(name, "submit failed")
                    continue
                try:
                    self.run_step(name, check)
                except Unreachable as exc:
                    self.results.append(StepResult(name, False, str(exc), 0.0))
                    self.emit(self.results[-1])
                    return 2
            return 0 if all(r.ok for r in self.results) else 1
        finally:
            self.client.close()

    def summary(self) -> str:
        passed = sum(r.ok for r in self.results)
        return f"smoke: {passed} passed, {len(self.results) - passed} failed"


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the stack's ApiUrl output, e.g. https://xyz.execute-api...")
    parser.add_argument("--key", default=os.environ.get("TASKRUNNER_API_KEY", ""), help="an API key (tr_...)")
    parser.add_argument("--callback", help="a receiver URL: check the callback is DELIVERED there")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of each step, in seconds (60)")
    parser.add_argument("--json", action="store_true", help="a JSON report on stdout (the lines go to stderr)")
    parser.add_argument(
        "--no-follow-stream",
        action="store_true",
        help="check the API's 307 to the stream function, without opening the stream (emulators that do not serve it)",
    )
    args = parser.parse_args(argv)
    stdout = out or sys.stdout
    lines = sys.stderr if args.json else stdout
    if not args.key:
        lines.write("FAIL  key       no API key: give --key tr_... (or TASKRUNNER_API_KEY)\n")
        lines.write("smoke: 0 passed, 1 failed\n")
        return 2
    smoke = Smoke(
        args.url,
        args.key,
        callback=args.callback,
        step_timeout=args.timeout,
        out=lines,
        follow_stream=not args.no_follow_stream,
    )
    lines.write(smoke.redact(f"smoke test of {smoke.url} (key {mask_key(args.key)})\n"))
    code = smoke.run()
    lines.write(smoke.summary() + "\n")
    if args.json:
        report = {
            "url": smoke.url,
            "ok": code == 0,
            "passed": sum(r.ok for r in smoke.results),
            "failed": sum(not r.ok for r in smoke.results),
            "steps": [
                {"step": r.step, "ok": r.ok, "detail": smoke.redact(r.detail), "seconds": round(r.seconds, 3)}
                for r in smoke.results
            ],
        }
        stdout.write(json.dumps(report, indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
