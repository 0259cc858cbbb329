"""What the command line prints: the progress display (plain, or rich on a terminal) and the tables."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TextIO

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
BAR_WIDTH = 30
HANDING_OVER = "handing over to the next invocation"


def compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def percent_of(task: Mapping[str, Any]) -> float:
    if task.get("status") == "COMPLETED":
        return 100.0
    progress = task.get("progress") or {}
    value = progress.get("percent") if isinstance(progress, dict) else None
    if not isinstance(value, int | float):
        return 0.0
    return max(0.0, min(100.0, float(value)))


def segment_note(task: Mapping[str, Any]) -> str:
    """``segment 3`` for a task run over several worker invocations, with the hand-over between two."""
    segments = task.get("segments")
    between = bool(task.get("between_segments")) and task.get("status") not in TERMINAL
    if not isinstance(segments, int) or (segments <= 1 and not between):
        return ""
    if between:
        return f"segment {segments} done, {HANDING_OVER}"
    return f"segment {segments}"


def progress_message(task: Mapping[str, Any]) -> str:
    progress = task.get("progress") or {}
    message = (progress.get("message") if isinstance(progress, dict) else None) or ""
    note = segment_note(task)
    return f"{note}: {message}" if note and message else note or str(message)


def progress_line(task: Mapping[str, Any], width: int = BAR_WIDTH, *, status: bool = True) -> str:
    """``[#########---------]  45.0%  RUNNING    segment 2: slept 9 of 20 s``"""
    percent = percent_of(task)
    filled = round(width * percent / 100)
    line = f"[{'#' * filled}{'-' * (width - filled)}] {percent:5.1f}%"
    if status:
        line += f"  {task.get('status', '?'):<9}"
    return f"{line}  {progress_message(task)}".rstrip()


class Display(Protocol):
    def update(self, task: Mapping[str, Any]) -> None: ...

    def finish(self) -> None: ...


class ProgressDisplay:
    """A progress bar redrawn in place (``\\r``) on a terminal; one line per change otherwise."""

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._last = ""
        self._drawn = 0

    def update(self, task: Mapping[str, Any]) -> None:
        line = progress_line(task)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self.out.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = 0


class QuietDisplay:
    """No display (``wait``)."""

    def update(self, task: Mapping[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


class RichProgressDisplay:
    """rich's live progress bar on a terminal: bar, percent, status (coloured), segment and message."""

    STYLES = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "yellow", "RETRYING": "magenta"}

    def __init__(self, out: TextIO, *, force_terminal: bool | None = None, width: int | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.console = Console(file=out, force_terminal=force_terminal, width=width, highlight=False)
        self.progress = Progress(
            BarColumn(bar_width=BAR_WIDTH),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.bar = self.progress.add_task("", total=100.0, status="")
        self.progress.start()
        self._started = True

    def update(self, task: Mapping[str, Any]) -> None:
        from rich.markup import escape

        status = str(task.get("status", "?"))
        style = self.STYLES.get(status, "cyan")
        self.progress.update(
            self.bar,
            completed=percent_of(task),
            status=f"[{style}]{status:<9}[/]",
            description=escape(progress_message(task)),
        )

    def finish(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False


# ---------------------------------------------------------------------------- one task


def format_state(task: Mapping[str, Any]) -> str:
    rows: list[tuple[str, str]] = [
        ("task", str(task.get("task_id", ""))),
        ("type", str(task.get("name", ""))),
        (
            "status",
            str(task.get("status", ""))
            + ("  (cancel requested)" if task.get("cancel_requested") and task.get("status") not in TERMINAL else ""),
        ),
        ("progress", progress_line(task, status=False)),
        ("attempts", f"{task.get('attempts', 0)} of {task.get('max_attempts', '?')}"),
        ("parameters", compact(task.get("parameters", {}))),
    ]
    note = segment_note(task)
    if note:
        text = note
        if task.get("max_runtime_seconds"):
            text += f" (runs for up to {task['max_runtime_seconds']} s in all)"
        rows.append(("segments", text))
    if task.get("retry_of"):
        rows.append(("retry of", str(task["retry_of"])))
    if task.get("metadata"):
        rows.append(("metadata", compact(task["metadata"])))
    if task.get("result") is not None:
        rows.append(("result", compact(task["result"])))
    error = task.get("error")
    if isinstance(error, dict):
        rows.append(("error", f"{error.get('type', 'Error')}: {error.get('message', '')}"))
    for label, key in (
        ("created", "created_at"),
        ("started", "started_at"),
        ("updated", "updated_at"),
        ("checkpoint", "checkpointed_at"),
        ("completed", "completed_at"),
        ("next attempt", "next_attempt_at"),
    ):
        if task.get(key):
            rows.append((label, str(task[key])))
    callback = task.get("callback")
    if isinstance(callback, dict):
        text = f"{callback.get('url')}  {callback.get('status')}, {callback.get('attempts', 0)} attempt(s)"
        if callback.get("delivered_at"):
            text += f", delivered {callback['delivered_at']}"
        if callback.get("last_error"):
            text += f", last error: {callback['last_error']}"
        rows.append(("callback", text))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def format_attempts(history: Sequence[Mapping[str, Any]]) -> str:
    """A table of a task's attempts; each failed one followed by its error and traceback, indented."""
    if not history:
        return "no attempts yet"
    rows = []
    details: dict[int, list[str]] = {}
    for index, entry in enumerate(history):
        duration = entry.get("duration_ms")
        rows.append(
            [
                str(entry.get("attempt", index + 1)),
                str(entry.get("outcome") or "-"),
                str(entry.get("started_at") or "-"),
                str(entry.get("ended_at") or "-"),
                f"{duration / 1000:.3f} s" if isinstance(duration, int | float) else "-",
            ]
        )
        error = entry.get("error")
        if isinstance(error, dict):
            lines = [f"    {error.get('type', 'Error')}: {error.get('message', '')}"]
            traceback = error.get("traceback") or []
            if isinstance(traceback, list):
                lines += [f"      {line}" for text in traceback for line in str(text).rstrip("\n").splitlines()]
            details[index] = lines
    table = format_table(["ATTEMPT", "OUTCOME", "STARTED", "ENDED", "DURATION"], rows, right=[0, 4]).splitlines()
    out = [table[0]]
    for index, line in enumerate(table[1:]):
        out.append(line)
        out.extend(details.get(index, []))
    return "\n".join(out)


# ---------------------------------------------------------------------------- lists


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def format_list(page: Mapping[str, Any]) -> str:
    tasks = page.get("tasks", [])
    if not tasks:
        return "no tasks"
    rows = [
        [t["task_id"], t["status"], t["name"], f"{percent_of(t):.0f}%", str(t.get("created_at", ""))] for t in tasks
    ]
    return format_table(["TASK", "STATUS", "TYPE", "PROGRESS", "CREATED"], rows, right=[3])


def schema_type(schema: Mapping[str, Any]) -> str:
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        kinds = [schema_type(o) for o in options if isinstance(o, dict) and o.get("type") != "null"]
        nullable = any(isinstance(o, dict) and o.get("type") == "null" for o in options)
        return "|".join(kinds) + ("?" if nullable else "") if kinds else "any"
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"{schema_type(items) if isinstance(items, dict) else 'any'}[]"
    return str(kind) if kind else "any"


def parameters_summary(schema: Mapping[str, Any]) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return "none"
    required = set(schema.get("required") or [])
    parts = []
    for name, prop in properties.items():
        text = f"{name}{'*' if name in required else ''}: {schema_type(prop if isinstance(prop, dict) else {})}"
        if isinstance(prop, dict) and prop.get("default") is not None:
            text += f"={compact(prop['default'])}"
        parts.append(text)
    return ", ".join(parts)


def format_types(types: Sequence[Mapping[str, Any]]) -> str:
    blocks = []
    for t in types:
        lines = [f"{t['name']}  (queue {t.get('queue', '?')}, timeout {t.get('timeout_seconds', '?')} s)"]
        if t.get("description"):
            lines.append(f"    {t['description']}")
        lines.append(f"    parameters: {parameters_summary(t.get('parameters_schema') or {})}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n\n(* required)"
