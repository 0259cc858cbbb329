"""Reusable worker processes per function, like Lambda execution environments:
initialised once and reused, killed at the function's timeout, replaced after a crash."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .procs import die_with_parent

CHILD = str(Path(__file__).resolve().parent / "child.py")
# Lambda's synchronous invocation payload limit, request and response alike (6 MB)
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024

log = logging.getLogger("taskrunner.local")


class InvocationError(Exception):
    """The handler raised (``kind`` = "Unhandled"), timed out or its process died."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class _Environment:
    def __init__(self, proc: asyncio.subprocess.Process, init_ms: float) -> None:
        self.proc = proc
        self.init_ms = init_ms
        self.invocations = 0


class FunctionPool:
    def __init__(
        self,
        name: str,
        handler: str,
        env: dict[str, str],
        *,
        timeout: float,
        memory: int,
        size: int,
        cwd: str,
        python: str = sys.executable,
        log_path: str = "",
        trace: Callable[[str], str] | None = None,
        payload_limit: int | None = None,
    ) -> None:
        """``python`` runs child.py by path (the function's runtime); ``log_path`` receives the
        function's output; ``trace(name)`` gives each invocation its X-Ray trace header;
        ``payload_limit`` caps request and response (synchronous invocations)."""
        self.name = name
        self.python = python
        self.log_path = log_path
        self._trace = trace
        self.payload_limit = payload_limit
        self.handler = handler
        self.env = env
        self.timeout = timeout
        self.memory = memory
        self.size = size
        self.cwd = cwd
        self._idle: asyncio.Queue[_Environment] = asyncio.Queue()
        self._count = 0
        self._all: set[_Environment] = set()  # idle and busy: close() stops every one
        self._slots = asyncio.Semaphore(size)
        self._ids = itertools.count()
        self.stats = {"invocations": 0, "cold_starts": 0, "timeouts": 0, "crashes": 0, "errors": 0, "active": 0}
        self.peak_active = 0

    async def _spawn(self) -> _Environment:
        proc = await asyncio.create_subprocess_exec(
            self.python,
            CHILD,
            self.handler,
            self.name,
            str(self.memory),
            self.log_path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            limit=64 * 1024 * 1024,
            # Like the embedded endpoint and the stream function: an environment must not
            # outlive the runner (killed by SIGKILL, it cannot kill them itself), or it would
            # go on running its batch against the endpoint while a new runner re-drives it.
            preexec_fn=die_with_parent,
            # not in the terminal's process group: Ctrl-C stops the runner, which stops them
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        if not line:
            raise InvocationError("InitError", f"{self.name} failed to start (see its stderr)")
        ready = json.loads(line)
        self.stats["cold_starts"] += 1
        log.debug("%s: new environment pid %s, init %.0f ms", self.name, proc.pid, ready["init_ms"])
        env = _Environment(proc, ready["init_ms"])
        self._all.add(env)
        return env

    async def prewarm(self, count: int = 1) -> None:
        for _ in range(min(count, self.size)):
            env = await self._spawn()
            self._count += 1
            self._idle.put_nowait(env)

    async def _acquire(self) -> _Environment:
        while True:
            try:
                env = self._idle.get_nowait()
            except asyncio.QueueEmpty:
                break
            if env.proc.returncode is None:
                return env
            self._lost_while_idle(env)
        env = await self._spawn()
        self._count += 1
        return env

    def _lost_while_idle(self, env: _Environment) -> None:
        self._count -= 1
        self._all.discard(env)
        self.stats["crashes"] += 1
        log.warning("%s: environment pid %s exited while idle; replaced", self.name, env.proc.pid)

    async def _send(self, line: bytes) -> _Environment:
        """Hand the request to a live environment. One that died while idle (killed, out of
        memory) never saw the event: it is replaced and the event goes to another, as on
        Lambda, instead of failing the invocation (and an SQS batch with it)."""
        for _ in range(self.size + 1):
            env = await self._acquire()
            assert env.proc.stdin is not None
            try:
                env.proc.stdin.write(line)
                await env.proc.stdin.drain()
                return env
            except (ConnectionError, BrokenPipeError):
                self._lost_while_idle(env)
                if env.proc.returncode is None:
                    env.proc.kill()
        raise InvocationError("Runtime.ExitError", f"{self.name}: no execution environment stayed up")

    def _discard(self, env: _Environment) -> None:
        self._count -= 1
        self._all.discard(env)
        if env.proc.returncode is None:
            env.proc.kill()

    async def invoke(self, event: dict[str, Any], *, timeout: float | None = None) -> Any:
        limit = timeout or self.timeout
        payload = json.dumps(event)
        if self.payload_limit is not None and len(payload.encode()) > self.payload_limit:
            raise InvocationError(
                "RequestTooLarge",
                f"Request must be smaller than {self.payload_limit} bytes for the InvokeFunction operation",
            )
        async with self._slots:
            self.stats["invocations"] += 1
            self.stats["active"] += 1
            self.peak_active = max(self.peak_active, self.stats["active"])
            try:
                return await self._invoke(payload, limit)
            finally:
                self.stats["active"] -= 1

    async def _invoke(self, payload: str, limit: float) -> Any:
        request_id = str(uuid.uuid4())
        head = {
            "id": next(self._ids),
            "request_id": request_id,
            "deadline_ms": time.time() * 1000 + limit * 1000,
            "trace_id": self._trace(self.name) if self._trace else "",
        }
        line = (json.dumps(head)[:-1] + f', "event": {payload}}}\n').encode()
        env = await self._send(line)
        assert env.proc.stdout is not None
        try:
            line = await asyncio.wait_for(env.proc.stdout.readline(), timeout=limit)
        except TimeoutError:
            self.stats["timeouts"] += 1
            self._discard(env)
            log.warning("%s: invocation %s timed out after %.0f s; environment replaced", self.name, request_id, limit)
            raise InvocationError("Timeout", f"Task timed out after {limit:.2f} seconds") from None
        except (ConnectionError, BrokenPipeError):
            line = b""
        if not line:
            self.stats["crashes"] += 1
            self._discard(env)
            log.warning("%s: environment crashed during invocation %s; replaced", self.name, request_id)
            raise InvocationError("Runtime.ExitError", "the execution environment exited")
        env.invocations += 1
        self._idle.put_nowait(env)
        if self.payload_limit is not None and len(line) > self.payload_limit:
            self.stats["errors"] += 1
            raise InvocationError(
                "ResponseTooLarge",
                f"Response payload size ({len(line)} bytes) exceeded maximum allowed payload size "
                f"({self.payload_limit} bytes).",
            )
        answer = json.loads(line)
        if not answer["ok"]:
            self.stats["errors"] += 1
            err = answer["error"]
            raise InvocationError("Unhandled", f"{err['errorType']}: {err['errorMessage']}")
        return answer["result"]

    def pids(self) -> list[int]:
        envs = list(self._idle._queue)  # type: ignore[attr-defined]
        return [e.proc.pid for e in envs]

    async def close(self) -> None:
        """Stops every environment, busy ones too (their work is redriven, as when Lambda's
        environment is lost: the message comes back after its visibility timeout)."""
        while not self._idle.empty():
            self._idle.get_nowait()
        envs, self._all = list(self._all), set()
        for env in envs:
            if env.proc.stdin is not None:
                env.proc.stdin.close()  # its pipe is a socket: close it, not leave it to the collector
            if env.proc.returncode is None:
                env.proc.kill()
            try:
                await asyncio.wait_for(env.proc.wait(), 5)
            except TimeoutError:
                pass
            transport = getattr(env.proc, "_transport", None)  # asyncio keeps it private
            if transport is not None:
                transport.close()
