"""Starts the local runner the way a user does (python -m infra.local) and waits for it."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from taskrunner_cli.sse import decode, raw_events

from infra.local.exceptions import LOCAL_SIGNING_SECRET
from infra.local.iam import read_calls
from infra.local.launch import start_runner, wait_until_serving
from infra.local.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
# the master secret the runner provisions (a declared local exception: AWS generates it)
LOCAL_MASTER_SECRET = LOCAL_SIGNING_SECRET


def owner_secret(owner: str = "dev") -> str:
    """The callback signing secret of an owner on the local stack."""
    from taskrunner.adapters.webhook_sender import secret_bytes
    from taskrunner.domain.auth import owner_signing_secret

    return owner_signing_secret(secret_bytes(LOCAL_MASTER_SECRET), owner)


LOCAL_SECRET = owner_secret("dev")
# every AWS call the functions of the stopped stacks made, as the embedded endpoint's IAM check
# logged it (tests/e2e/conftest.py prints them per function at the end of the run)
IAM_CALLS: list[dict[str, Any]] = []


@dataclasses.dataclass
class RunningStack:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready_seconds: float
    state: dict[str, Any]
    _iam_checked: bool = dataclasses.field(default=False, init=False)

    @property
    def api_key(self) -> str:
        return str(self.state["api_key"])

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.api_key}

    def client(self, *, api_key: str | None = None, **kw: Any) -> httpx.Client:
        """An HTTP client of the local stack, sending the development API key (or ``api_key``)."""
        headers = {"X-Api-Key": api_key or self.api_key, **kw.pop("headers", {})}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def iam_calls(self) -> list[dict[str, Any]]:
        """Every call the functions made, checked against their roles (none if an outside
        endpoint, which enforces IAM itself, served the stack)."""
        iam = self.state.get("iam") or {}
        return read_calls(iam["calls_log"]) if iam.get("enforced") else []

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the runner; then fails if IAM denied any call of a function (a grant missing
        from template.yaml), unless the test is already failing."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._iam_checked:
            return
        self._iam_checked = True
        calls = self.iam_calls()
        IAM_CALLS.extend(calls)
        denied = sorted({f"{c['function']} {c['action']} on {c['resource']}" for c in calls if not c["allowed"]})
        if denied and sys.exc_info()[0] is None:
            raise AssertionError(
                "IAM denied calls the functions made (template.yaml lacks grants):\n" + "\n".join(denied)
            )


def start_stack(
    tmp: Path,
    *,
    endpoint: str | None = None,
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
    prefix: str | None = None,
    own_group: bool = False,
) -> RunningStack:
    port = free_port()
    state_file = tmp / f"runner-{port}.json"
    log_path = tmp / f"runner-{port}.log"
    env = dict(extra_env or {})
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    run_args = [*(args or []), *(["--prefix", prefix] if prefix else [])]
    proc = start_runner(
        port=port,
        moto_port=free_port(),
        state_file=state_file,
        log_path=log_path,
        args=run_args,
        env=env,
        own_group=own_group,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        state, seconds = wait_until_serving(proc, url, state_file, log_path)
    except RuntimeError:
        proc.kill()
        proc.wait(10)
        raise
    return RunningStack(url, proc, log_path, seconds, state)


def sse_events(
    client: httpx.Client, path: str, *, headers: dict[str, str] | None = None, timeout: float = 60
) -> list[dict[str, Any]]:
    """Read a task's event stream to its end; each event as {"id": int, "data": dict, "at": monotonic}
    (its arrival), parsed by the CLI's parser (taskrunner_cli.sse); no "id" when the event has none."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", path, headers=headers or {}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for raw in raw_events(response.iter_lines()):
            event = decode(raw)  # a malformed event fails the test
            events.append(
                {**({"id": event.id} if event.id is not None else {}), "data": event.data, "at": time.monotonic()}
            )
    return events
