"""What the runner prints once it serves: the stack's summary, the declared local exceptions
to template.yaml's environment, and the ready line."""

from __future__ import annotations

from .exceptions import describe
from .stack import Stack


def announce(stack: Stack, host: str, port: int) -> None:
    width = max(len(k) for k, _ in stack.summary)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in stack.summary]
    print("taskrunner local stack\n" + "\n".join(lines), flush=True)
    print(
        "local exceptions to template.yaml's environment (infra/local/exceptions.py):\n"
        + "\n".join(f"  {line}" for line in describe(stack.exceptions)),
        flush=True,
    )
    print(
        f"ready in {stack.ready_seconds + 0:.1f} s: http://{host}:{port}  (docs: /docs; Ctrl-C stops)",
        flush=True,
    )
