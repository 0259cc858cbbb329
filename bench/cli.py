"""``python -m bench``: run the benchmarks, print the table, write bench-results.json."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report import Report, Row, command
from .stack import ROOT, LocalStack, running_stack

ALL = ("coldstart", "bundle", "requests", "hotkeys", "submit", "throughput", "sse", "load", "peer", "awsmodel")
ALIASES = {
    "hot": "hotkeys",
    "shards": "hotkeys",
    "cpu": "throughput",
    "cost": "requests",
    "cold": "coldstart",
    "size": "bundle",
    "latency": "submit",
    "stream": "sse",
    "model": "awsmodel",
}
LIVE = ("submit", "throughput", "sse")
DEFAULT_OUT = ROOT / "bench-results.json"
TIME_LIMIT = 1500.0  # seconds: no part starts after 25 minutes (a full run takes about 20 on two busy cores)
# The local API function's token bucket stands in for API Gateway's throttling; the
# performance stack turns it off so it measures the pipeline, the load run keeps it.
PERF_STACK_ARGS = ["--set", "RATE_LIMIT_PER_SECOND=0"]


@dataclasses.dataclass(frozen=True)
class Plan:
    quick: bool
    coldstart_runs: int
    flow_tasks: int
    load_tasks: int
    load_clients: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick, coldstart_runs=3, flow_tasks=10, load_tasks=300, load_clients=16)
        return cls(quick, coldstart_runs=7, flow_tasks=20, load_tasks=2000, load_clients=32)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller counts (a smoke run of a minute or two)")
    p.add_argument(
        "--only",
        default="",
        metavar="NAME[,NAME]",
        help=f"run only these: {', '.join(ALL)} (aliases: {', '.join(f'{k}={v}' for k, v in ALIASES.items())})",
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results (default: bench-results.json)"
    )
    p.add_argument("--no-build", action="store_true", help="do not run `make build` when .aws-sam/build is missing")
    p.add_argument("--no-load", action="store_true", help="leave the load run out of the default selection")
    args = p.parse_args(argv)
    if args.only:
        names = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in ALL]
        if unknown:
            p.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
        args.selected = [n for n in ALL if n in names]
    else:
        args.selected = [n for n in ALL if not (n == "load" and args.no_load)]
    return args


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end the run the same way: stacks stopped, results so far written
    (SIGINT is restored even when the shell started us with it ignored)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = Plan.make(args.quick)
        self.report = Report({"quick": args.quick, "selected": args.selected, "out": str(args.out)})
        self.deadline = time.monotonic() + TIME_LIMIT

    def log(self, message: str) -> None:
        print(
            f"[bench {time.monotonic() - (self.deadline - TIME_LIMIT):5.0f} s] {message}", file=sys.stderr, flush=True
        )

    def step(self, name: str, run: Callable[[], list[Row]]) -> None:
        if time.monotonic() > self.deadline:
            self.report.add(
                Row(
                    f"{name}.skipped",
                    name,
                    f"skipped: the run reached its {TIME_LIMIT:.0f} s limit",
                    None,
                    command=command(name, self.args.quick),
                )
            )
            return
        self.log(f"{name} ...")
        started = time.monotonic()
        try:
            rows = run()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            traceback.print_exc()
            rows = [
                Row(
                    f"{name}.error",
                    name,
                    f"failed: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1][:200]}",
                    "error",
                    ok=False,
                    command=command(name, self.args.quick),
                )
            ]
            self.report.details.setdefault("errors", {})[name] = traceback.format_exc()[-4000:]
        self.report.extend(rows)
        self.report.details.setdefault("step_seconds", {})[name] = round(time.monotonic() - started, 1)
        self.log(f"{name} done in {time.monotonic() - started:.0f} s")

    def run(self) -> Report:
        selected = self.args.selected
        quick = self.args.quick
        plan = self.plan
        details = self.report.details
        if "coldstart" in selected:
            from .coldstart import bench_coldstart

            self.step("coldstart", lambda: bench_coldstart(plan.coldstart_runs, details, quick))
        if "bundle" in selected:
            from .bundle import bench_bundle

            self.step("bundle", lambda: bench_bundle(details, quick, build=not (quick or self.args.no_build)))
        if "requests" in selected:
            self.step("requests", self._requests)
        if "hotkeys" in selected:
            from .hotkeys import bench_hotkeys

            self.step("hotkeys", lambda: bench_hotkeys(plan.flow_tasks * 2, details, quick))
        live = [n for n in LIVE if n in selected]
        if live:
            self._live(live)
        if "peer" in selected:
            self._peer()
        if "load" in selected:
            self._load()
        if "awsmodel" in selected:
            from .awsmodel import bench_awsmodel

            self.step("awsmodel", lambda: bench_awsmodel(details, self.args.out, quick))
        return self.report

    def _requests(self) -> list[Row]:
        from .billing import Flows
        from .cost import bench_requests

        flows = Flows(self.plan.flow_tasks)
        return bench_requests(flows.run(), flows.memory, self.report.details, self.args.quick)

    def _live(self, names: list[str]) -> None:
        from .live import LiveCounts, bench_submit
        from .sse import bench_sse
        from .throughput import bench_throughput

        counts = LiveCounts.quick() if self.args.quick else LiveCounts()
        benches: dict[str, Callable[[LocalStack, LiveCounts, dict[str, Any], bool], list[Row]]] = {
            "submit": bench_submit,
            "throughput": bench_throughput,
            "sse": bench_sse,
        }
        self.log("starting a local stack (python -m infra.local) ...")
        with running_stack(args=PERF_STACK_ARGS) as stack:
            self.report.details["stack"] = {"ready_seconds": round(stack.ready_seconds, 1), "args": stack.args}
            for name in names:
                bench = benches[name]

                def run(bench: Callable[..., list[Row]] = bench) -> list[Row]:
                    return bench(stack, counts, self.report.details, self.args.quick)

                self.step(name, run)

    def _load(self) -> None:
        from .load import bench_load

        def run() -> list[Row]:
            with running_stack() as stack:
                return bench_load(
                    stack,
                    self.plan.load_tasks,
                    self.plan.load_clients,
                    self.report.details,
                    self.args.quick,
                    timeout=max(60.0, self.deadline + 60 - time.monotonic()),
                )

        self.step("load", run)

    def _peer(self) -> None:
        from .peer import bench_peer

        def run() -> list[Row]:
            with running_stack() as stack:  # as `make run` starts it: defaults, throttle on
                return bench_peer(stack, self.report.details, self.args.quick, rounds=1 if self.args.quick else 3)

        self.step("peer", run)


NOTES = [
    "Live figures come from one local stack (python -m infra.local: moto server, function processes, HTTP front) on "
    "this machine, started by the benchmark with the local throttle off (--set RATE_LIMIT_PER_SECOND=0); the load run "
    "uses a fresh stack with defaults. Other work on the machine adds noise: one run's medians and percentiles, no "
    "retries.",
    "Every task's AWS calls go to moto's server (an emulator in Python): on two CPUs it dominates both CPU and "
    "latency; see 'moto (excluded)' under CPU per task.",
    "The peer comparison (peer) runs on a fresh stack with `make run`'s defaults: medians of 3 rounds (1 with "
    "--quick); its CPU per task counts every process, the embedded endpoint included.",
    "Cold starts: Python on this machine, not Lambda's python3.13/arm64; import times are timed inside a fresh "
    "interpreter.",
]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _stop_on_signals()
    runner = Runner(args)
    report = runner.report
    report.notes.extend(NOTES)
    interrupted = False
    try:
        runner.run()
    except KeyboardInterrupt:
        interrupted = True
        report.notes.append("interrupted: the figures above are the ones measured before the interruption")
    report.finished = time.time()
    text = report.text()
    print(text, flush=True)
    if "requests" in report.details:
        print(
            "\nCost assumptions:\n" + "\n".join(f"- {a}" for a in report.details["requests"]["assumptions"]), flush=True
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report.write(args.out)
    print(f"\nwritten: {args.out}", flush=True)
    if interrupted:
        return 130
    return 1 if any(r.key.endswith(".error") for r in report.rows) else 0
