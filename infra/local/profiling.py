"""CPU profiles of the runner and the embedded endpoint (``--profile DIR`` of the runner, or
``LOCAL_PROFILE_DIR``): every thread of the process gets a cProfile timed by its own CPU
clock (``time.thread_time``, so threads blocked in a long poll or a select cost nothing),
and at exit the merged profile is written to ``DIR/<name>.prof`` with the top 25 lines by
cumulative and by own time in ``DIR/<name>.txt``."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import threading
import time
from pathlib import Path
from typing import Any

ENV = "LOCAL_PROFILE_DIR"
_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_here() -> None:
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()


def _on_new_thread(*_: Any) -> None:
    # threading.setprofile's hook runs once in each new thread; the profiler replaces it
    _start_here()


def install() -> bool:
    """Profile this thread and every thread started from now on, if LOCAL_PROFILE_DIR is set."""
    if not os.environ.get(ENV):
        return False
    threading.setprofile(_on_new_thread)
    _start_here()
    return True


class _Snapshot:
    def __init__(self, profile: cProfile.Profile) -> None:
        profile.snapshot_stats()  # works while the profiler runs
        self.stats = profile.stats

    def create_stats(self) -> None:
        return None


def dump(name: str) -> Path | None:
    """Write the merged profile of every thread so far; None when profiling is off."""
    directory = os.environ.get(ENV)
    if not directory:
        return None
    with _lock:
        profiles = list(_profiles)
    snapshots = [_Snapshot(p) for p in profiles]
    snapshots = [s for s in snapshots if s.stats]
    if not snapshots:
        return None
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    stats = pstats.Stats(snapshots[0])  # type: ignore[arg-type]
    for snap in snapshots[1:]:
        stats.add(snap)  # type: ignore[arg-type]
    stats.dump_stats(str(out / f"{name}.prof"))
    text = io.StringIO()
    text.write(f"{name}: CPU time per thread (time.thread_time), {len(snapshots)} threads\n\n")
    for order in ("cumulative", "tottime"):
        text.write(f"=== top 25 by {order}\n")
        pstats.Stats(str(out / f"{name}.prof"), stream=text).sort_stats(order).print_stats(25)
    (out / f"{name}.txt").write_text(text.getvalue())
    return out / f"{name}.txt"
