"""The embedded AWS endpoint's process (moto's server, infra/local/moto_server.py): started
with the IAM policy file and the kept data, its denials forwarded to the console."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from .procs import die_with_parent, port_open, wait_for_port


def start_moto(port: int, iam_policy: Path, state_dir: Path, snapshot_every: float) -> subprocess.Popen[bytes]:
    if port_open("127.0.0.1", port):
        raise SystemExit(
            f"port {port} is already in use; stop what listens there, pass --moto-port, "
            f"or point AWS_ENDPOINT_URL at it if it is an AWS endpoint"
        )
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter
        [
            sys.executable,
            *("-m", "infra.local.moto_server", "-H", "127.0.0.1", "-p", str(port)),
            *("--iam-policy", str(iam_policy)),
            *("--state-dir", str(state_dir), "--snapshot-every", str(snapshot_every)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - needed so it dies with us
        # not in the terminal's process group: Ctrl-C stops the runner, which stops it last
        start_new_session=True,
    )
    threading.Thread(target=_forward_denials, args=(proc,), daemon=True, name="iam-denials").start()
    if not wait_for_port("127.0.0.1", port, 20):
        proc.kill()
        raise SystemExit("the embedded AWS endpoint (moto) did not start")
    return proc


def _forward_denials(proc: subprocess.Popen[bytes]) -> None:
    """The endpoint's IAM denials and what it says of its kept data on our console; the rest
    of its output is moto's noise."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith((b"IAM ", b"aws-state: ")):
            sys.stderr.write(line.decode(errors="replace"))
            sys.stderr.flush()


def fresh(aws_state: Path) -> None:
    """--fresh: the embedded endpoint starts empty; the kept data is dropped."""
    from .persistence import SNAPSHOT

    snapshot = aws_state / SNAPSHOT
    if snapshot.exists():
        snapshot.unlink()
        print(f"aws-state: --fresh: dropped {snapshot}", file=sys.stderr, flush=True)


def iam_paths(state_file: str) -> tuple[Path, Path]:
    """(policy file, calls log) of a runner, next to its state file."""
    state = Path(state_file)
    return state.with_name(state.stem + ".iam-policy.json"), state.with_name(state.stem + ".iam-calls.jsonl")
