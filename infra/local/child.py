"""One local 'execution environment': imports a handler once, then serves invocations.

Run by path with the function's own Python and bundle (``python3.13 infra/local/child.py``),
so it needs only the standard library.

Protocol (parent <-> child): one JSON object per line. The child answers
``{"ready": true, "init_ms": ..}`` after importing the handler, then one line per request
``{"id", "event", "deadline_ms", "request_id", "trace_id"}`` -> ``{"id", "ok", "result" | "error"}``.
What the function prints (logs, EMF metrics, tracebacks) goes to its log file, as Lambda
sends it to the function's log group; lines that are warnings or errors, and anything that
is not a JSON document, are also copied to stderr (the runner's console).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import time
import traceback
from typing import Any

_QUIET = ('"level":"DEBUG"', '"level":"INFO"', '"level": "DEBUG"', '"level": "INFO"', '"_aws"')


class _Tee(io.TextIOBase):
    """Writes everything to the log file; copies what a developer must see to the console."""

    def __init__(self, log: Any, console: Any) -> None:
        self._log = log
        self._console = console
        self._line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._log.write(text)
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            if line.strip() and not (line.lstrip().startswith("{") and any(q in line for q in _QUIET)):
                self._console.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._log.flush()
        self._console.flush()


class LambdaContext:
    def __init__(self, function_name: str, memory: int, request_id: str, deadline_ms: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.aws_request_id = request_id
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def main() -> None:
    handler_path, function_name, memory = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log_path = sys.argv[4] if len(sys.argv) > 4 else ""
    # run by path: this directory is not the function's code, keep it off the import path
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    if log_path:
        log = open(log_path, "a", buffering=1, encoding="utf-8")  # open for the process's life
        sys.stdout = sys.stderr = _Tee(log, sys.__stderr__)
    else:
        sys.stdout = sys.stderr
    started = time.perf_counter()
    module_name, func_name = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), func_name)
    protocol.write(json.dumps({"ready": True, "init_ms": round((time.perf_counter() - started) * 1000, 1)}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("trace_id"):
            os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]  # as Lambda's runtime sets it
        context = LambdaContext(function_name, memory, request["request_id"], request["deadline_ms"])
        answer: dict[str, Any] = {"id": request["id"]}
        try:
            answer["result"] = handler(request["event"], context)
            answer["ok"] = True
        except Exception as exc:
            answer["ok"] = False
            answer["error"] = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exc().splitlines()[-8:],
            }
            traceback.print_exc()
        sys.stdout.flush()
        protocol.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
