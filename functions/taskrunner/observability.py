"""Powertools Logger, Metrics and Tracer for every function, created on first use.

The X-Ray SDK costs ~100 ms to import, so the Tracer is built only where tracing is on
(POWERTOOLS_TRACE_DISABLED unset on AWS) and only when the first invocation arrives,
never while the handler module is imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

SERVICE = "taskrunner"


@functools.cache
def logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))


@functools.cache
def tracer() -> Any:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE), patch_modules=["botocore"])


def metrics_enabled() -> bool:
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() not in ("1", "true")


def run_handler(function: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], context: Any) -> Any:
    """Run a handler with the invocation's context in every log line, traced when enabled."""
    log = logger()
    if context is not None:
        log.append_keys(
            function_name=getattr(context, "function_name", None),
            function_request_id=getattr(context, "aws_request_id", None),
            cold_start=_cold_start(),
        )
    active = tracer()
    if active is None:
        return function(event, context)

    # The Tracer names the handler's subsegment after ``__name__``, which a callable object
    # (the API's Mangum adapter) does not have: hand it a plain function ("## handler").
    def handler(event: dict[str, Any], context: Any) -> Any:
        return function(event, context)

    return active.capture_lambda_handler(handler)(event, context)


_invocations = {"count": 0}


def _cold_start() -> bool:
    _invocations["count"] += 1
    return _invocations["count"] == 1
