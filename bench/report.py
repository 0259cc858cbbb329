"""Results: rows of figures with their budgets, a Markdown table and a JSON document."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

PYTHON = ".venv/bin/python"


def command(name: str, quick: bool = False) -> str:
    """The exact command that measures one benchmark again."""
    return f"{PYTHON} -m bench --only {name}" + (" --quick" if quick else "")


@dataclasses.dataclass
class Row:
    """One figure: its value, the budget it is held to (if any) and whether it is met."""

    key: str
    section: str
    label: str
    value: float | str | None
    unit: str = ""
    budget: str = ""
    ok: bool | None = None
    command: str = ""
    note: str = ""

    @property
    def result(self) -> str:
        if self.ok is None:
            return "info" if self.value is not None else "n/a"
        return "met" if self.ok else "MISSED"

    def shown_value(self) -> str:
        value = self.value
        if value is None:
            return "n/a"
        if isinstance(value, str):
            return value
        if isinstance(value, float) and math.isnan(value):
            return "n/a"
        if isinstance(value, float):
            text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
        else:
            text = f"{value:,}"
        return f"{text} {self.unit}".strip()


def at_most(value: float | None, limit: float) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value >= limit


@dataclasses.dataclass
class Report:
    options: dict[str, Any]
    rows: list[Row] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.time)
    finished: float | None = None

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def extend(self, rows: list[Row]) -> None:
        self.rows.extend(rows)

    @property
    def missed(self) -> list[Row]:
        return [r for r in self.rows if r.ok is False]

    def markdown(self) -> str:
        lines = [
            "| # | Benchmark | Figure | Value | Budget | Result | Command |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, row in enumerate(self.rows, 1):
            label = row.label + (f" ({row.note})" if row.note else "")
            cmd = f"`{row.command}`" if row.command else ""
            lines.append(
                f"| {i} | {row.section} | {_cell(label)} | {_cell(row.shown_value())} | {_cell(row.budget)} | "
                f"{row.result} | {cmd} |"
            )
        return "\n".join(lines)

    def text(self) -> str:
        elapsed = (self.finished or time.time()) - self.started
        met = sum(1 for r in self.rows if r.ok is True)
        out = [
            f"## taskrunner benchmarks ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {elapsed:.0f} s)",
            "",
            self.markdown(),
            "",
            f"Budgets: {met} met, {len(self.missed)} missed.",
        ]
        if self.notes:
            out += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_seconds": round((self.finished or time.time()) - self.started, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            },
            "command": " ".join([PYTHON, "-m", "bench", *sys.argv[1:]]),
            "options": self.options,
            "summary": {"met": sum(1 for r in self.rows if r.ok is True), "missed": [r.key for r in self.missed]},
            "rows": [{**dataclasses.asdict(r), "result": r.result, "shown": r.shown_value()} for r in self.rows],
            "details": self.details,
            "notes": self.notes,
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(_clean(self.to_json()), indent=2, default=_default, allow_nan=False) + "\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _clean(value: Any) -> Any:
    """NaN and infinities as null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _default(value: Any) -> Any:
    return str(value)
