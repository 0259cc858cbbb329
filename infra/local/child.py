"""One local 'execution environment': imports a handler once, then serves invocations.

Protocol (parent <-> child): one JSON object per line. The child answers
``{"ready": true, "init_ms": ..}`` after importing the handler, then one line per request
``{"id", "event", "deadline_ms", "request_id"}`` -> ``{"id", "ok", "result" | "error"}``.
Anything the handler prints goes to stderr, so stdout carries only the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


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
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    started = time.perf_counter()
    module_name, func_name = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), func_name)
    protocol.write(json.dumps({"ready": True, "init_ms": round((time.perf_counter() - started) * 1000, 1)}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
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
        protocol.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
