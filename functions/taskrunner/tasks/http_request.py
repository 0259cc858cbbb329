"""``http_request``: calls an external HTTP API (seed 003's ChatGPT/weather calls, in general)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from ..domain.errors import NonRetryableError
from ..domain.ports import TaskContext
from .registry import TaskRegistry


class HttpRequestParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    url: AnyHttpUrl = Field(description="http(s) URL to call.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    json_body: Any = Field(default=None, alias="json", description="JSON body to send.")
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    max_response_bytes: int = Field(default=100_000, ge=0, le=200_000)


def run(params: HttpRequestParameters, ctx: TaskContext) -> dict[str, Any]:
    ctx.check()
    headers = dict(params.headers)
    body = None
    if params.json_body is not None:
        body = json.dumps(params.json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    response = ctx.http.request(
        params.method, str(params.url), headers=headers, body=body, timeout=params.timeout_seconds
    )
    if 500 <= response.status:
        raise RuntimeError(f"upstream answered HTTP {response.status}")  # retryable
    text = response.body[: params.max_response_bytes].decode("utf-8", "replace")
    parsed: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    if 400 <= response.status:
        raise NonRetryableError(f"upstream answered HTTP {response.status}: {text[:200]}")
    return {
        "status_code": response.status,
        "headers": {
            k.lower(): v for k, v in response.headers.items() if k.lower() in ("content-type", "content-length")
        },
        "json": parsed,
        "text": None if parsed is not None else text,
        "truncated": len(response.body) > params.max_response_bytes,
    }


def register(registry: TaskRegistry) -> None:
    registry.register(
        "http_request",
        run,
        HttpRequestParameters,
        description="Calls an HTTP API with a timeout and returns its answer.",
        queue="io",
        timeout_seconds=120,
        url_parameters=("url",),
    )
