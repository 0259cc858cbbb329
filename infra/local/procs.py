"""Process helpers: children that die with the runner, free ports, waiting for a port, and the
one reader of /proc (Linux) that the tests and the benchmarks use to find, measure and stop
the runner's processes."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import socket
import time
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when the runner dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------- /proc
@dataclasses.dataclass(frozen=True)
class Proc:
    """A process as /proc/<pid>/stat and cmdline showed it when read, identified by pid and start
    time (so a reused pid is not mistaken for it)."""

    pid: int
    ppid: int
    start: int  # clock ticks after boot
    state: str  # R, S, D, Z (zombie), X (dead), ...
    cmdline: str  # the arguments joined by spaces
    cpu_seconds: float  # user + system CPU time
    rss_bytes: int  # resident memory

    @property
    def alive(self) -> bool:
        """Still running now (not exited, not a zombie, its pid not taken by another process)."""
        now = read(self.pid)
        return now is not None and now.start == self.start and now.state not in ("Z", "X")

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / 2**20


def read(pid: int) -> Proc | None:
    """The process ``pid`` now, or None when there is none (or it may not be read)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ..." where comm may contain spaces and parentheses; field n of
    # proc(5) (1-based) is rest[n - 3]
    rest = stat[stat.rindex(")") + 2 :].split()
    return Proc(
        pid,
        ppid=int(rest[1]),
        start=int(rest[19]),
        state=rest[0],
        cmdline=raw.replace(b"\0", b" ").decode(errors="replace").strip(),
        cpu_seconds=(int(rest[11]) + int(rest[12])) / CLOCK_TICKS,
        rss_bytes=int(rest[21]) * PAGE_SIZE,
    )


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (/proc/<pid>/environ)."""
    raw = (PROC / str(pid) / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def all_processes() -> list[Proc]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def descendants(root: int, *, zombies: bool = False) -> list[Proc]:
    """Every process under ``root`` (children, grandchildren...); zombies only if asked (their
    CPU time still counts until they are reaped; a zombie has no children of its own)."""
    children: dict[int, list[Proc]] = {}
    for p in all_processes():
        children.setdefault(p.ppid, []).append(p)
    found: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if zombies or child.state not in ("Z", "X"):
                found.append(child)
                todo.append(child.pid)
    return found


def kill(procs: list[Proc], sig: int = signal.SIGKILL) -> None:
    """Signal those of ``procs`` that are still alive (never a process that took over a pid)."""
    for p in procs:
        if p.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p.pid, sig)


def wait_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait until none of ``procs`` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if p.alive]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if p.alive]
    return left
