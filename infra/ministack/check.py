"""Check a deployed stack through its API: a `sum` task completes (API -> queue -> worker), a
task cancelled before it runs (no callback) is CANCELLED, and both are listed."""

from __future__ import annotations

import time
from typing import Any

import httpx


def _ok(response: httpx.Response, *codes: int) -> dict[str, Any]:
    if response.status_code not in (codes or (200,)):
        request = response.request
        raise AssertionError(f"{request.method} {request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def check(api_url: str, api_key: str, timeout: float = 120.0, log: Any = print) -> dict[str, Any]:
    started = time.monotonic()
    with httpx.Client(base_url=api_url.rstrip("/"), headers={"x-api-key": api_key}, timeout=60.0) as api:
        submitted = _ok(
            api.post("/api/tasks", json={"task_name": "sum", "task_parameters": {"numbers": [1, 2, 3.5]}}), 201, 202
        )
        task_id = submitted["task_id"]
        log(f"submitted sum task {task_id} ({submitted['status']})")
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = _ok(api.get(f"/api/tasks/{task_id}/state"))
            if state["status"] in {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}:
                break
            time.sleep(1.0)
        if state.get("status") != "COMPLETED":
            raise AssertionError(f"task {task_id} did not complete within {timeout:.0f} s: {state}")
        if state.get("result", {}).get("result") != 6.5:
            raise AssertionError(f"unexpected result: {state.get('result')}")
        completed_after = time.monotonic() - started
        log(f"task {task_id} COMPLETED in {completed_after:.1f} s: {state['result']}")

        delayed = _ok(
            api.post(
                "/api/tasks", json={"task_name": "sum", "task_parameters": {"a": 1, "b": 2}, "delay_seconds": 600}
            ),
            201,
            202,
        )
        cancelled = _ok(api.post(f"/api/tasks/{delayed['task_id']}/cancel"))
        if cancelled["status"] != "CANCELLED":
            raise AssertionError(f"cancel: {cancelled}")
        log(f"task {delayed['task_id']} CANCELLED before it ran")

        listed = {t["task_id"]: t["status"] for t in _ok(api.get("/api/tasks", params={"limit": 100}))["tasks"]}
        expected = {task_id: "COMPLETED", delayed["task_id"]: "CANCELLED"}
        if any(listed.get(k) != v for k, v in expected.items()):
            raise AssertionError(f"list: expected {expected} among {listed}")
        log(f"listed {len(listed)} tasks, both found")
    return {"task_id": task_id, "completed_seconds": round(completed_after, 1), "cancelled_task_id": delayed["task_id"]}
