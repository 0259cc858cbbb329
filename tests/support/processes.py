"""The local runner's process tree, read from /proc (Linux): find, kill and outlive children."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


@dataclasses.dataclass(frozen=True)
class Proc:
    """A process, identified by pid and start time (so a reused pid is not mistaken for it)."""

    pid: int
    ppid: int
    start: int
    state: str
    cmdline: str

    @property
    def alive(self) -> bool:
        now = read(self.pid)
        return now is not None and now.start == self.start and now.state not in ("Z", "X")


def read(pid: int) -> Proc | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ..." where comm may contain spaces and parentheses
    rest = stat[stat.rindex(")") + 2 :].split()
    return Proc(pid, int(rest[1]), int(rest[19]), rest[0], raw.replace(b"\0", b" ").decode(errors="replace").strip())


def all_processes() -> list[Proc]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def descendants(root: int) -> list[Proc]:
    """Every live process under ``root`` (children, grandchildren...)."""
    procs = all_processes()
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    found: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.state not in ("Z", "X"):
                found.append(child)
                todo.append(child.pid)
    return found


def function_processes(root: int, handler: str) -> list[Proc]:
    """The runner's execution environments of one handler, e.g. ``taskrunner.entrypoints.worker.handler``."""
    return [p for p in descendants(root) if f"infra/local/child.py {handler} " in p.cmdline]


def kill(procs: list[Proc], sig: int = signal.SIGKILL) -> None:
    for p in procs:
        if p.alive:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass


def wait_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait until none of ``procs`` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if p.alive]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if p.alive]
    return left
