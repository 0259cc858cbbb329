"""A Lambda context object for calling handlers in-process, as Lambda's runtime passes it: the
local runner's own emulation (infra/local/child.py), with a fixed request id."""

from __future__ import annotations

import time

from infra.local.child import LambdaContext as RuntimeContext


class LambdaContext(RuntimeContext):
    """``remaining_seconds``: the time left of the invocation when it is made (a fresh
    WorkerFunction invocation has 900 s); it runs down with the clock, as Lambda's does."""

    def __init__(self, function_name: str = "test", *, memory: int = 256, remaining_seconds: float = 900.0) -> None:
        super().__init__(function_name, memory, "req-1", (time.time() + remaining_seconds) * 1000)
