"""Prometheus ``/metrics`` of the local runner.

The functions emit their metrics as on AWS: CloudWatch EMF documents (Powertools), one JSON
line each, in their log (``<state dir>/logs/<Function>.log``). The runner tails those files,
translates each EMF metric into a prometheus-client metric of its own registry (counters
``*_total``, durations as ``*_seconds`` histograms) and asks the AWS endpoint for the queues'
depths (GetQueueAttributes, with the runner's own key) when scraped. Nothing changes in the
functions: their metrics stay on, as on AWS, where CloudWatch is the source.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger("taskrunner.local")
PREFIX = "taskrunner"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# EMF metric -> the ``status`` label of taskrunner_tasks_total
TASK_STATUSES = {
    "TasksSubmitted": "submitted",
    "TasksStarted": "started",
    "TasksCompleted": "completed",
    "TasksFailed": "failed",
    "TasksRetried": "retried",
    "TasksCancelled": "cancelled",
    "TasksRedriven": "redriven",
}
# EMF metric -> the ``outcome`` label of taskrunner_callbacks_total
CALLBACK_OUTCOMES = {"CallbacksDelivered": "delivered", "CallbackRetries": "retried", "CallbacksFailed": "failed"}
# a task runs from milliseconds (sum) to hours (long tasks continue across invocations)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 14400)
# from enqueue to a worker's start: tens of milliseconds when idle, minutes under a backlog
WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
HISTOGRAMS = {
    "RunDuration": ("task_run_duration_seconds", "Time a task ran, from its start to its end", RUN_BUCKETS),
    "QueueWait": (
        "task_queue_wait_seconds",
        "Time a task waited in its queue before a worker started it",
        WAIT_BUCKETS,
    ),
    "HandOverGap": (
        "segment_handover_gap_seconds",
        "Time from a long task's hand-over to the start of its next segment",
        WAIT_BUCKETS,
    ),
}
# EMF units of time -> seconds per unit
SECONDS_PER = {"Microseconds": 1e-6, "Milliseconds": 1e-3, "Seconds": 1.0}


def snake(name: str) -> str:
    """``CallbackRetries`` -> ``callback_retries``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class EmfTranslator:
    """EMF documents -> prometheus-client metrics in ``registry``, labelled by ``task_type``.

    Metrics without a mapping of their own follow the conventions by their unit: ``Count`` a
    counter ``taskrunner_<name>_total``, a unit of time a histogram ``taskrunner_<name>_seconds``;
    other units are left out (``taskrunner_emf_metrics_ignored_total`` counts them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.tasks = Counter(
            f"{PREFIX}_tasks",
            "Task transitions by task type and status (submitted, started, completed, failed, retried, "
            "cancelled, redriven)",
            ["task_type", "status"],
            registry=registry,
        )
        self.callbacks = Counter(
            f"{PREFIX}_callbacks",
            "Callback deliveries by task type and outcome (delivered, retried, failed)",
            ["task_type", "outcome"],
            registry=registry,
        )
        self.documents = Counter(
            f"{PREFIX}_emf_documents", "EMF documents read from the functions' logs", ["function"], registry=registry
        )
        self.ignored = Counter(
            f"{PREFIX}_emf_metrics_ignored",
            "EMF metrics not translated (a unit that is neither Count nor time)",
            ["metric"],
            registry=registry,
        )
        self._histograms: dict[str, Histogram] = {
            emf: Histogram(f"{PREFIX}_{name}", doc, ["task_type"], buckets=buckets, registry=registry)
            for emf, (name, doc, buckets) in HISTOGRAMS.items()
        }
        self._counters: dict[str, Counter] = {}
        self._lock = threading.Lock()

    def line(self, text: str, function: str = "") -> int:
        """One line of a function's log: the number of metrics it carried (0 if not EMF)."""
        if '"_aws"' not in text:
            return 0
        try:
            doc = json.loads(text)
        except ValueError:
            return 0
        if not isinstance(doc, dict) or not isinstance(doc.get("_aws"), dict):
            return 0
        self.documents.labels(function=function).inc()
        return self.document(doc)

    def document(self, doc: dict[str, Any]) -> int:
        task_type = str(doc.get("task_type") or "")
        count = 0
        for directive in doc["_aws"].get("CloudWatchMetrics") or []:
            for definition in directive.get("Metrics") or []:
                name = definition.get("Name")
                raw = doc.get(name)
                values = raw if isinstance(raw, list) else [raw]
                for value in values:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        count += self.metric(name, definition.get("Unit", "None"), float(value), task_type)
        return count

    def metric(self, name: str, unit: str, value: float, task_type: str) -> int:
        if name in TASK_STATUSES:
            self.tasks.labels(task_type=task_type, status=TASK_STATUSES[name]).inc(value)
        elif name in CALLBACK_OUTCOMES:
            self.callbacks.labels(task_type=task_type, outcome=CALLBACK_OUTCOMES[name]).inc(value)
        elif unit in SECONDS_PER:
            self._histogram(name).labels(task_type=task_type).observe(value * SECONDS_PER[unit])
        elif unit == "Count":
            self._counter(name).labels(task_type=task_type).inc(value)
        else:
            self.ignored.labels(metric=name).inc()
            return 0
        return 1

    def _histogram(self, name: str) -> Histogram:
        with self._lock:
            if name not in self._histograms:
                self._histograms[name] = Histogram(
                    f"{PREFIX}_{snake(name)}_seconds",
                    f"EMF metric {name}, in seconds",
                    ["task_type"],
                    registry=self.registry,
                )
            return self._histograms[name]

    def _counter(self, name: str) -> Counter:
        with self._lock:
            if name not in self._counters:
                self._counters[name] = Counter(
                    f"{PREFIX}_{snake(name)}", f"EMF metric {name}", ["task_type"], registry=self.registry
                )
            return self._counters[name]


class LogTail:
    """Follows the functions' log files from their current end (counters start at zero with
    the runner, as a Prometheus counter does with its process); a truncated file is read from
    its start again."""

    def __init__(self, logs: dict[str, Path], sink: EmfTranslator) -> None:
        self.sink = sink
        self._files = {function: path for function, path in logs.items()}
        self._offsets = {function: _size(path) for function, path in logs.items()}
        self._partial = dict.fromkeys(logs, b"")
        self._lock = threading.Lock()

    def poll(self) -> int:
        """Reads what was appended since the last poll: the number of metrics translated."""
        translated = 0
        with self._lock:
            for function, path in self._files.items():
                size = _size(path)
                offset = self._offsets[function]
                if size < offset:  # truncated or replaced
                    offset, self._partial[function] = 0, b""
                if size == offset:
                    continue
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read(size - offset)
                self._offsets[function] = offset + len(chunk)
                *lines, self._partial[function] = (self._partial[function] + chunk).split(b"\n")
                for raw in lines:
                    translated += self.sink.line(raw.decode("utf-8", errors="replace"), function)
        return translated


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def embedded_oldest_ages(endpoint: str) -> Callable[[], dict[str, float]]:
    """The embedded endpoint's ages of the oldest messages, by queue name (moto_server.py)."""

    def fetch() -> dict[str, float]:
        with urllib.request.urlopen(f"{endpoint}{OLDEST_AGES_PATH}", timeout=5) as answer:  # noqa: S310 - loopback
            return {str(k): float(v) for k, v in json.loads(answer.read()).items()}

    return fetch


OLDEST_AGES_PATH = "/_local/sqs/oldest-message-ages"


class RunnerMetrics:
    """The runner's registry: the functions' EMF metrics and the queues' depths."""

    def __init__(self, logs: dict[str, Path], queue_depths: Collector | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.translator = EmfTranslator(self.registry)
        self.tail = LogTail(logs, self.translator)
        self.up = Gauge(f"{PREFIX}_runner_up", "1 while the local runner serves", registry=self.registry)
        self.up.set(1)
        if queue_depths is not None:
            self.registry.register(queue_depths)

    def scrape(self) -> bytes:
        """The Prometheus text exposition, with every EMF line written so far (blocking: run it in a thread)."""
        self.tail.poll()
        return generate_latest(self.registry)
