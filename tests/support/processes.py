"""The local runner's process tree (infra/local/procs.py reads /proc): find, kill and outlive children."""

from __future__ import annotations

from infra.local.procs import Proc, descendants, kill, wait_gone

__all__ = ["Proc", "descendants", "function_processes", "kill", "wait_gone"]


def function_processes(root: int, handler: str) -> list[Proc]:
    """The runner's execution environments of one handler, e.g. ``taskrunner.entrypoints.worker.handler``."""
    return [p for p in descendants(root) if f"infra/local/child.py {handler} " in p.cmdline]
