"""Start the local runner the way a user does (``python -m infra.local``) on given ports and
wait until it serves: shared by the end-to-end tests and the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .procs import die_with_parent

ROOT = Path(__file__).resolve().parents[2]


def start_runner(
    *,
    port: int,
    moto_port: int,
    state_file: Path,
    log_path: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    die_with_us: bool = False,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """The runner's process; its output goes to ``log_path``. AWS_ENDPOINT_URL of this process
    is not passed on (``env`` may set it). The embedded endpoint keeps its data next to the
    state file (``<state file>.aws-state/``), never in the repository's ``.local/``, unless
    ``args`` names a directory (``--aws-state-dir``). ``own_group``: the runner leads its own
    process group, so a test can send it a terminal's Ctrl-C (``os.killpg``)."""
    run_env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    run_env.update(env or {})
    cmd = [sys.executable, "-m", "infra.local", "--port", str(port), "--moto-port", str(moto_port)]
    cmd += ["--state-file", str(state_file), *args]
    if "--aws-state-dir" not in args:
        cmd += ["--aws-state-dir", str(state_file.with_name(state_file.stem + ".aws-state"))]
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - our own interpreter
            cmd,
            cwd=ROOT,
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if die_with_us else None,  # noqa: PLW1509
            process_group=0 if own_group else None,
        )


def wait_until_serving(
    proc: subprocess.Popen[bytes], url: str, state_file: Path, log_path: Path, timeout: float = 90
) -> tuple[dict[str, Any], float]:
    """(the runner's state file, seconds until /health answered 200); RuntimeError with the
    runner's log if it exits or is not serving within ``timeout``."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the runner exited with {proc.returncode}:\n{_tail(log_path)}")
        if state_file.exists():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return json.loads(state_file.read_text()), time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"the runner was not serving within {timeout:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
