"""``python -m infra.local``'s command line: its flags, their defaults from the environment,
and ``--function-timeout``'s check against the template."""

from __future__ import annotations

import argparse
import os

from .template import ROOT, FunctionSpec


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """The runner's flags; ``description`` is the help's text (the entry point's docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m infra.local", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8000")), help="HTTP front port (default 8000, or $PORT)"
    )
    p.add_argument(
        "--endpoint",
        default=os.environ.get("AWS_ENDPOINT_URL", ""),
        help="AWS endpoint to use instead of the embedded one (LocalStack, a moto server, or empty for embedded)",
    )
    p.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "4566")))
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=int(os.environ.get("LOCAL_MAX_CONCURRENCY", "4")),
        help="cap on each function's concurrent environments",
    )
    p.add_argument(
        "--reconcile-every",
        type=float,
        default=float(os.environ.get("RECONCILE_EVERY", "10")),
        help="seconds between reconciler runs (AWS: the template's schedule)",
    )
    p.add_argument(
        "--prefix",
        default=os.environ.get("LOCAL_STACK_PREFIX", "taskrunner-local"),
        help="name prefix of the tables and queues",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra environment variable for every function"
    )
    p.add_argument(
        "--function-timeout",
        action="append",
        default=[],
        metavar="FUNCTION=SECONDS",
        help="run a function with a shorter (or longer) timeout than template.yaml's, e.g. WorkerFunction=20 to "
        "see long tasks continue across invocations in seconds",
    )
    p.add_argument("--state-file", default=os.environ.get("LOCAL_STATE_FILE", str(ROOT / ".local" / "runner.json")))
    p.add_argument(
        "--aws-state-dir",
        default=os.environ.get("LOCAL_AWS_STATE_DIR", str(ROOT / ".local" / "aws-state")),
        help="where the embedded endpoint keeps its tables, queues and secrets across restarts",
    )
    p.add_argument(
        "--snapshot-every",
        type=float,
        default=float(os.environ.get("LOCAL_SNAPSHOT_EVERY", "2")),
        help="seconds between the embedded endpoint's snapshots when something changed (default 2)",
    )
    p.add_argument("--fresh", action="store_true", help="start the embedded endpoint empty (drops the kept data)")
    p.add_argument(
        "--quick-env",
        action="store_true",
        help="run the functions on this virtualenv's Python and packages (quicker to set up) instead of "
        "python3.13 with each function's own bundle, as on Lambda",
    )
    p.add_argument("--verbose", action="store_true")
    p.add_argument(
        "--profile",
        default=os.environ.get("LOCAL_PROFILE_DIR", ""),
        metavar="DIR",
        help="write CPU profiles of the runner and the embedded endpoint to DIR at stop (infra/local/profiling.py)",
    )
    return p.parse_args(argv)


def function_timeouts(given: list[str], specs: dict[str, FunctionSpec]) -> dict[str, int]:
    """``--function-timeout FUNCTION=SECONDS`` values, checked against the template."""
    out: dict[str, int] = {}
    for item in given:
        name, _, value = item.partition("=")
        if name not in specs:
            raise SystemExit(f"--function-timeout {item}: no function {name!r} in template.yaml ({', '.join(specs)})")
        try:
            seconds = int(value)
        except ValueError:
            seconds = 0
        if not 1 <= seconds <= 900:
            raise SystemExit(f"--function-timeout {item}: seconds must be a whole number from 1 to 900 (Lambda)")
        out[name] = seconds
    return out
