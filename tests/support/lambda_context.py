"""A Lambda context object for calling handlers in-process, as Lambda's runtime passes it."""

from __future__ import annotations

import time


class LambdaContext:
    """``remaining_seconds``: the time left of the invocation when it is made (a fresh
    WorkerFunction invocation has 900 s); it runs down with the clock, as Lambda's does."""

    def __init__(self, function_name: str = "test", *, memory: int = 256, remaining_seconds: float = 900.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.aws_request_id = "req-1"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._end = time.monotonic() + remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))
