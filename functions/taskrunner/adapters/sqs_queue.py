"""TaskQueue on SQS: one queue per workload (default, io), a priority queue, callbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..domain.errors import DependencyUnavailableError
from ..domain.models import Task
from .aws import translated, unavailable


def queue_url_from_arn(arn: str, endpoint_url: str | None, region_fallback: str) -> str:
    """arn:aws:sqs:REGION:ACCOUNT:NAME -> the queue URL (for ChangeMessageVisibility)."""
    parts = arn.split(":")
    region, account, name = parts[3] or region_fallback, parts[4], parts[5]
    if endpoint_url:
        return f"{endpoint_url.rstrip('/')}/{account}/{name}"
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


def task_message(task: Task, *, continuation: bool = False) -> str:
    body: dict[str, Any] = {**task.ref.to_dict(), "timeout": str(task.timeout_seconds)}
    if continuation:
        # claims only the task waiting after exactly this attempt's segment
        body["continue"] = {"attempt": task.attempts, "segment": task.segments, "handed_over_at": task.handed_over_at}
    return json.dumps(body, separators=(",", ":"))


class SqsTaskQueue:
    def __init__(
        self,
        client: Any,
        queue_urls: Mapping[str, str],
        callbacks_queue_url: str,
        *,
        priority_queue_url: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        self._sqs = client
        self._urls = dict(queue_urls)
        self._callbacks = callbacks_queue_url
        self._priority = priority_queue_url
        self._endpoint = endpoint_url
        self._region = region

    @property
    def client(self) -> Any:
        """The SQS client (the API's /api/metrics reads the queues' attributes with it)."""
        return self._sqs

    def url_for(self, task: Task) -> str:
        if task.priority and self._priority:
            return self._priority
        url = self._urls.get(task.queue) or self._urls.get("default")
        if not url:
            raise DependencyUnavailableError("SQS", f"no queue configured for {task.queue!r}")
        return url

    def enqueue(self, task: Task, *, delay_seconds: int = 0, continuation: bool = False) -> None:
        self._send(self.url_for(task), task_message(task, continuation=continuation), delay_seconds)

    def enqueue_callback(self, task_id: str, *, delay_seconds: int = 0) -> None:
        self._send(self._callbacks, json.dumps({"task_id": task_id}), delay_seconds)

    def _send(self, url: str, body: str, delay_seconds: int) -> None:
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if delay_seconds:
            kwargs["DelaySeconds"] = max(0, min(900, int(delay_seconds)))
        with translated("SQS"):
            self._sqs.send_message(**kwargs)

    def change_visibility(self, source_arn: str, receipt_handle: str, seconds: int) -> None:
        url = queue_url_from_arn(source_arn, self._endpoint, self._region)
        with translated("SQS"):
            self._sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(43_000, int(seconds)))
            )

    def ping(self) -> None:
        if "default" not in self._urls:
            raise unavailable("SQS", KeyError("default"))
        with translated("SQS"):
            self._sqs.get_queue_attributes(QueueUrl=self._urls["default"], AttributeNames=["QueueArn"])
