"""Tiny Lambda handlers for the local runner's own tests (run in its execution environments)."""

from __future__ import annotations

import os
import time
from typing import Any


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("seconds", 0.3)))
    return {"pid": os.getpid()}


def http(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An HTTP API (payload 2.0) handler answering with ``?size=`` bytes."""
    size = int((event.get("queryStringParameters") or {}).get("size", "2"))
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "x" * size}
