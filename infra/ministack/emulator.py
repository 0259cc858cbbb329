"""Start and stop a MiniStack emulator on a loopback port (state in a directory under .local/)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-ministack"
DEFAULT_PORT = 4566


def healthy(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=timeout) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _state(state_dir: Path) -> dict[str, object]:
    path = state_dir / "emulator.json"
    return json.loads(path.read_text()) if path.exists() else {}


def running(state_dir: Path) -> str | None:
    """The endpoint of the emulator this state directory started, if it still answers."""
    endpoint = _state(state_dir).get("endpoint")
    return str(endpoint) if endpoint and healthy(str(endpoint)) else None


def start(state_dir: Path, port: int | None = None, wait: float = 60.0) -> str:
    """The running emulator's endpoint, starting one (bound to 127.0.0.1) if none runs."""
    endpoint = running(state_dir)
    if endpoint:
        return endpoint
    python = VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: `make deploy-local` installs MiniStack there")
    if port is None:
        port = DEFAULT_PORT if _free(DEFAULT_PORT) else free_port()
    elif not _free(port):
        raise SystemExit(f"127.0.0.1:{port} is taken; pass another port or ENDPOINT=")
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "MINISTACK_REGION": "us-east-1",
        "LOG_LEVEL": os.environ.get("MINISTACK_LOG_LEVEL", "INFO"),
        # functions run with the emulator's python (3.13, with boto3): see adapt.WORKAROUNDS
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(state_dir),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    log = (state_dir / "ministack.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [str(python), "-m", "ministack"],
        env=env,
        cwd=state_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    (state_dir / "emulator.json").write_text(json.dumps({"pid": proc.pid, "endpoint": endpoint}))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"MiniStack exited ({proc.returncode}); see {state_dir / 'ministack.log'}")
        if healthy(endpoint, timeout=1.0):
            print(f"MiniStack {endpoint} (pid {proc.pid}, log {state_dir / 'ministack.log'})", file=sys.stderr)
            return endpoint
        time.sleep(0.3)
    stop(state_dir)
    raise SystemExit(f"MiniStack did not answer on {endpoint} within {wait:.0f} s")


def stop(state_dir: Path) -> bool:
    """Stop the emulator this state directory started (its whole process group)."""
    state = _state(state_dir)
    pid = state.get("pid")
    (state_dir / "emulator.json").unlink(missing_ok=True)
    if not isinstance(pid, int):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
