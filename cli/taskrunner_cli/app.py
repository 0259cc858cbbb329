"""``taskrunner``: the command line (argparse) and its commands.

    taskrunner submit sleep seconds=5 --follow
    taskrunner state 6f1d2c          # a unique prefix of 6+ characters is enough
    taskrunner wait 6f1d2c && echo done
    taskrunner retry 6f1d2c --follow
    taskrunner attempts 6f1d2c

Exit codes: 0 success (a task COMPLETED); 1 the task is FAILED or CANCELLED; 2 usage or lookup
error (bad arguments, unknown or ambiguous id, a request the service refused); 3 the service
cannot be reached, is failing (5xx) or refuses the key (401/403); 130 interrupted.

Longer than the package's other modules because it is the whole command line: the parser of
ten commands and their dispatch, kept in one place so that `--help` and the code agree; the
HTTP client, the stream follower and the display live in their own modules.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from . import __version__
from .client import (
    EXIT_OK,
    EXIT_TASK_FAILED,
    ApiError,
    Client,
    CliError,
    HttpResponse,
    HttpxTransport,
    Transport,
    UnreachableError,
    describe_detail,
)
from .config import DEFAULT_URL, Options, resolve_options
from .display import (
    TERMINAL,
    Display,
    ProgressDisplay,
    QuietDisplay,
    RichProgressDisplay,
    format_attempts,
    format_list,
    format_state,
    format_types,
    parameters_summary,
    progress_line,
)
from .follow import follow
from .sse import Event, parse_sse

__all__ = [
    "ApiError",
    "CliError",
    "Client",
    "Event",
    "HttpResponse",
    "Options",
    "ProgressDisplay",
    "UnreachableError",
    "describe_detail",
    "follow",
    "format_list",
    "format_state",
    "format_types",
    "key_value",
    "main",
    "parameters_summary",
    "parse_args",
    "parse_sse",
    "progress_line",
    "resolve_options",
]

STATUSES = ("PENDING", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED")
SHORT_ID_MIN = 6
FULL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_PREFIX = re.compile(r"[0-9a-f-]+")
LOOKUP_PAGES = 20  # short ids are looked up among the newest 20 x 100 tasks


# ---------------------------------------------------------------------------- arguments


def key_value(text: str) -> tuple[str, Any]:
    """``key=value``: the value as JSON when it parses (``5``, ``true``, ``[1,2]``), else the string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def status_name(text: str) -> str:
    upper = text.strip().upper()
    if upper not in STATUSES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(STATUSES)}")
    return upper


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a number of at least 1")
    return value


EPILOG = (
    "Exit codes: 0 ok (the task COMPLETED); 1 the task FAILED or was CANCELLED; 2 usage or lookup error "
    "(bad arguments, unknown or ambiguous id, a request refused with 4xx); 3 the service is unreachable, "
    "failing (5xx) or refuses the key (401/403)."
)


def build_parser() -> argparse.ArgumentParser:
    # The connection options are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"service URL (env TASKRUNNER_URL; default: the local runner's, else {DEFAULT_URL})",
    )
    common.add_argument(
        "--api-key",
        "--key",
        dest="api_key",
        default=argparse.SUPPRESS,
        help="API key, sent as X-Api-Key (env TASKRUNNER_API_KEY; default: the local runner's)",
    )
    common.add_argument(
        "--state",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="the local runner's state file (env TASKRUNNER_STATE; default: .local/runner.json here or above)",
    )
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait for an answer (default 30)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the service's JSON instead of text"
    )

    parser = argparse.ArgumentParser(
        prog="taskrunner",
        parents=[common],
        description="Submit, follow, list, cancel and retry tasks of a taskrunner service.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"taskrunner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser(
        "submit",
        parents=[common],
        help="submit a task",
        description="Submit a task: taskrunner submit sleep seconds=5 --follow",
    )
    submit.add_argument("type", help="task type (see: taskrunner types)")
    submit.add_argument(
        "params",
        nargs="*",
        type=key_value,
        metavar="key=value",
        help="a parameter; the value is JSON when it parses, else a string",
    )
    submit.add_argument(
        "--parameters",
        type=json_object,
        default=None,
        metavar="JSON",
        help="parameters as a JSON object (key=value pairs override)",
    )
    submit.add_argument("--callback", metavar="URL", help="URL that receives the result as a signed POST")
    submit.add_argument("--delay", type=int, default=None, metavar="SECONDS", help="start no sooner than this")
    submit.add_argument("--max-attempts", type=positive_int, default=None, metavar="N")
    submit.add_argument("--priority", action="store_true", help="use the high-priority queue")
    submit.add_argument(
        "--idempotency-key", metavar="KEY", help="submitting again with the same key returns the same task"
    )
    submit.add_argument(
        "--follow", "-f", action="store_true", help="show live progress until the task ends, then print its result"
    )

    id_help = "a task id, or a unique prefix of at least 6 characters"
    state = commands.add_parser("state", parents=[common], help="show a task's current state (exit 1 if it failed)")
    state.add_argument("task_id", metavar="TASK_ID", help=id_help)

    follow_cmd = commands.add_parser(
        "follow", parents=[common], help="show a task's live progress until it ends, then print its result"
    )
    follow_cmd.add_argument("task_id", metavar="TASK_ID", help=id_help)

    wait = commands.add_parser(
        "wait", parents=[common], help="wait quietly until a task ends; exit 0 if it COMPLETED, 1 if not"
    )
    wait.add_argument("task_id", metavar="TASK_ID", help=id_help)

    listing = commands.add_parser("list", parents=[common], help="list tasks, newest first")
    listing.add_argument("--status", type=status_name, help="only tasks in this status")
    listing.add_argument("--active", action="store_true", help="only PENDING, RUNNING and RETRYING tasks")
    listing.add_argument("--name", help="only tasks of this type")
    listing.add_argument("--limit", type=positive_int, default=None, help="tasks per page (1-100, default 20)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a task")
    cancel.add_argument("task_id", metavar="TASK_ID", help=id_help)

    retry = commands.add_parser(
        "retry", parents=[common], help="run a FAILED or CANCELLED task again, as a new task linked to it"
    )
    retry.add_argument("task_id", metavar="TASK_ID", help=id_help)
    retry.add_argument("--follow", "-f", action="store_true", help="follow the new task until it ends")

    attempts = commands.add_parser(
        "attempts", parents=[common], help="a task's attempts: outcome, duration, error and traceback"
    )
    attempts.add_argument("task_id", metavar="TASK_ID", help=id_help)

    commands.add_parser("types", parents=[common], help="list the task types and their parameters")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``key=value`` pairs of ``submit`` may also follow its options."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "submit" and not any(item.startswith("-") for item in extra):
        try:
            args.params = [*args.params, *(key_value(item) for item in extra)]
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument key=value: {exc}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


# ---------------------------------------------------------------------------- short ids


def resolve_task_id(client: Client, text: str) -> str:
    """A full task id as given; a prefix of 6+ characters of one (hex and dashes) looked up among the
    newest tasks: unique → its id; none or several → CliError (exit 2)."""
    candidate = text.strip().lower()
    if FULL_ID.fullmatch(candidate) or not ID_PREFIX.fullmatch(candidate):
        return text
    if len(candidate) < SHORT_ID_MIN:
        raise CliError(f"task id {text!r} is too short: give at least {SHORT_ID_MIN} characters")
    matches: list[str] = []
    cursor: str | None = None
    for _ in range(LOOKUP_PAGES):
        page = client.list_tasks(limit=100, cursor=cursor)
        matches += [t["task_id"] for t in page.get("tasks", []) if str(t.get("task_id", "")).startswith(candidate)]
        cursor = page.get("next_cursor")
        if not cursor or len(matches) > 1:
            break
    if not matches:
        raise CliError(f"no task id starts with {text!r}")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise CliError(f"task id {text!r} is ambiguous: it starts {shown}; give more characters")
    return matches[0]


# ---------------------------------------------------------------------------- commands


def progress_display(err: TextIO) -> Display:
    """rich's live bar on a terminal; plain lines (one per change) in a pipe or a log."""
    if err.isatty():
        return RichProgressDisplay(err)
    return ProgressDisplay(err)


def run(args: argparse.Namespace, client: Client, opts: Options, out: TextIO, err: TextIO) -> int:
    def emit(value: Any) -> None:
        out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    if args.command == "submit":
        parameters = dict(args.parameters or {})
        parameters.update(dict(args.params))
        accepted = client.submit(
            args.type,
            parameters,
            callback_url=args.callback,
            delay_seconds=args.delay,
            max_attempts=args.max_attempts,
            priority=args.priority,
            idempotency_key=args.idempotency_key,
        )
        return accepted_task(client, accepted, args.follow, opts, out, err, verb="accepted", kind=args.type)

    if args.command == "list":
        page = client.list_tasks(
            status=args.status, active=args.active, name=args.name, limit=args.limit, cursor=args.cursor
        )
        if opts.json:
            emit(page)
        else:
            out.write(format_list(page) + "\n")
            if page.get("next_cursor"):
                err.write(f"more: add --cursor {page['next_cursor']}\n")
        return EXIT_OK

    if args.command == "types":
        types = client.task_types()
        if opts.json:
            emit({"task_types": types})
        else:
            out.write(format_types(types) + "\n")
        return EXIT_OK

    task_id = resolve_task_id(client, args.task_id)

    if args.command == "state":
        task = client.state(task_id)
        if opts.json:
            emit(task)
        else:
            out.write(format_state(task) + "\n")
        return EXIT_TASK_FAILED if task.get("status") in ("FAILED", "CANCELLED") else EXIT_OK

    if args.command in ("follow", "wait"):
        task = client.state(task_id)
        if task.get("status") not in TERMINAL:
            quiet = args.command == "wait"
            display = QuietDisplay() if quiet else progress_display(err)
            task = follow(client, task, display)
        if args.command == "wait" and not opts.json:
            out.write(f"{task.get('task_id')} {task.get('status')}\n")
            return EXIT_OK if task.get("status") == "COMPLETED" else EXIT_TASK_FAILED
        return report_final(task, opts, out, err)

    if args.command == "cancel":
        task = client.cancel(task_id)
        if opts.json:
            emit(task)
        elif task.get("status") == "CANCELLED":
            out.write(f"{task['task_id']} CANCELLED\n")
        else:
            out.write(
                f"{task['task_id']} {task.get('status')}: cancellation requested; "
                "it stops at its next progress report\n"
            )
        return EXIT_OK

    if args.command == "retry":
        accepted = client.retry(task_id)
        return accepted_task(client, accepted, args.follow, opts, out, err, verb=f"retrying {task_id} as", kind=None)

    if args.command == "attempts":
        task = client.state(task_id)
        if "attempt_history" not in task:
            raise CliError(
                f"the service does not report attempts (no attempt_history in the state of task {task_id}); "
                "see: taskrunner state"
            )
        history = task.get("attempt_history") or []
        if opts.json:
            emit(history)
        else:
            out.write(format_attempts(history) + "\n")
        return EXIT_OK
    raise CliError(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses it first


def accepted_task(
    client: Client,
    accepted: Mapping[str, Any],
    follow_it: bool,
    opts: Options,
    out: TextIO,
    err: TextIO,
    *,
    verb: str,
    kind: str | None,
) -> int:
    """What submit and retry print: the new id (or the JSON), or its progress and result with --follow."""
    task_id = accepted["task_id"]
    name = accepted.get("name", kind or "")
    if not follow_it:
        if opts.json:
            out.write(json.dumps(accepted, indent=2, ensure_ascii=False) + "\n")
        else:
            out.write(f"{task_id}\n")
            err.write(f"{verb} {name} task {task_id} ({accepted.get('status')}); see: taskrunner state {task_id}\n")
        return EXIT_OK
    err.write(f"{verb} {name} task {task_id}; following it (Ctrl-C stops following, not the task)\n")
    final = follow(client, accepted, progress_display(err))
    return report_final(final, opts, out, err)


def report_final(task: Mapping[str, Any], opts: Options, out: TextIO, err: TextIO) -> int:
    status = task.get("status")
    if opts.json:
        out.write(json.dumps(task, indent=2, ensure_ascii=False) + "\n")
    elif status == "COMPLETED":
        out.write(json.dumps(task.get("result"), indent=2, ensure_ascii=False) + "\n")
    if status == "COMPLETED":
        return EXIT_OK
    error = task.get("error") or {}
    reason = f": {error.get('type', 'Error')}: {error.get('message', '')}" if isinstance(error, dict) and error else ""
    err.write(f"task {task.get('task_id')} {status}{reason}\n")
    return EXIT_TASK_FAILED


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: Transport | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``taskrunner`` console script; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = parse_args(argv)
    opts = resolve_options(args, env)
    owned: HttpxTransport | None = None
    try:
        if transport is None:
            transport = owned = HttpxTransport()
        client = Client(opts.url, opts.api_key, transport=transport, timeout=opts.timeout)
        return run(args, client, opts, out, err)
    except ApiError as exc:
        hint = ""
        if exc.status in (401, 403):
            hint = " (pass --api-key or set TASKRUNNER_API_KEY)"
        elif exc.status >= 500:
            hint = " (the service is failing; try again)"
        err.write(f"taskrunner: error {exc.message}{hint}\n")
        return exc.exit_code
    except UnreachableError as exc:
        err.write(f"taskrunner: {exc.message}; is the service running? (--url or TASKRUNNER_URL)\n")
        return exc.exit_code
    except CliError as exc:
        err.write(f"taskrunner: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("\ntaskrunner: interrupted\n")
        return 130
    finally:
        if owned is not None:
            owned.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
