"""Bundle size per function, from ``make build``'s output in .aws-sam/build/<Function>/."""

from __future__ import annotations

import io
import os
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

from .report import Row, at_most, command
from .stack import ROOT

BUILD_DIR = ROOT / ".aws-sam" / "build"
EXCLUDED = ("boto3", "botocore", "s3transfer")  # the budget is "boto3 excluded" (the bundles ship a pinned SDK)
MB = 1024 * 1024
BUDGET_MB = 15.0


def _excluded(top: str) -> bool:
    name = top.split("-", 1)[0].split(".", 1)[0].lower()
    return name in EXCLUDED


def measure(directory: Path, *, zipped: bool = True) -> dict[str, Any]:
    """Unzipped bytes without boto3/botocore/s3transfer and __pycache__; the largest
    top-level entries; the deflated size of the same files."""
    total = 0
    files = 0
    by_top: dict[str, int] = {}
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        rel = Path(dirpath).relative_to(directory)
        top_level = rel == Path(".")
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not (top_level and _excluded(d))]
        for name in filenames:
            if top_level and _excluded(name):
                continue
            path = Path(dirpath) / name
            if not path.is_file():
                continue
            size = path.stat().st_size
            total += size
            files += 1
            top = (rel.parts[0] if rel.parts else name).split("-", 1)[0]
            by_top[top] = by_top.get(top, 0) + size
            paths.append(path)
    out: dict[str, Any] = {
        "bytes": total,
        "mb": round(total / MB, 2),
        "files": files,
        "largest": {k: round(v / MB, 2) for k, v in sorted(by_top.items(), key=lambda kv: -kv[1])[:8]},
    }
    if zipped:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for path in paths:
                archive.write(path, path.relative_to(directory))
        out["zipped_mb"] = round(buffer.tell() / MB, 2)
    return out


def _built() -> bool:
    """Every function directory of the build has files (a build in progress has empty ones)."""
    if not BUILD_DIR.is_dir():
        return False
    dirs = [p for p in BUILD_DIR.iterdir() if p.is_dir()]
    return bool(dirs) and all(any(d.iterdir()) for d in dirs)


def ensure_built(build: bool, details: dict[str, Any]) -> bool:
    """True when .aws-sam/build exists; runs `make build` first when asked to."""
    if _built():
        return True
    if not build:
        return False
    started = time.monotonic()
    try:
        done = subprocess.run(["make", "build"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        details["bundle"] = {"build_error": str(exc)}
        return False
    if done.returncode != 0:
        details["bundle"] = {"build_error": done.stdout[-1500:] + done.stderr[-1500:]}
        return False
    details.setdefault("bundle", {})["built_seconds"] = round(time.monotonic() - started, 1)
    return _built()


def bench_bundle(details: dict[str, Any], quick: bool, *, build: bool) -> list[Row]:
    cmd = command("bundle", quick)
    if not ensure_built(build, details):
        return [
            Row(
                "bundle.missing",
                "6 bundle size",
                "not built: run `make build` (sam build, offline), then measure again",
                "not built",
                "",
                f"<= {BUDGET_MB:g} MB",
                None,
                cmd,
            )
        ]
    functions = sorted(p.name for p in BUILD_DIR.iterdir() if p.is_dir())
    built_at = max(p.stat().st_mtime for p in BUILD_DIR.iterdir())
    info = {name: measure(BUILD_DIR / name, zipped=not quick) for name in functions}
    details["bundle"] = {
        **details.get("bundle", {}),
        "build_dir": str(BUILD_DIR.relative_to(ROOT)),
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(built_at)),
        "functions": info,
        "method": "unzipped bytes (1 MB = 2^20 bytes) of .aws-sam/build/<Function>/, without boto3, botocore, "
        "s3transfer (and their dist-info) and __pycache__",
    }
    rows = []
    for name in functions:
        size = info[name]["mb"]
        biggest = ", ".join(f"{k} {v:g}" for k, v in list(info[name]["largest"].items())[:3])
        zipped = f"; zipped {info[name]['zipped_mb']:g} MB" if "zipped_mb" in info[name] else ""
        rows.append(
            Row(
                f"bundle.{name}",
                "6 bundle size",
                f"{name} unzipped",
                size,
                "MB",
                f"<= {BUDGET_MB:g} MB",
                at_most(size, BUDGET_MB),
                cmd,
                f"largest: {biggest}{zipped}",
            )
        )
    return rows
