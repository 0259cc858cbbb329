"""SQS event source mappings, as Lambda runs them: poll, batch, invoke, delete what
succeeded, leave the failures for redelivery after their visibility timeout."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from .pool import FunctionPool, InvocationError

log = logging.getLogger("taskrunner.local")


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attrs = message.get("Attributes", {})
    body = message["Body"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attrs.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attrs.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attrs.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class SqsEventSource:
    def __init__(
        self,
        name: str,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        pool: FunctionPool,
        *,
        batch_size: int = 10,
        batching_window: float = 0.0,
        concurrency: int = 2,
        report_failures: bool = True,
        region: str = "us-east-1",
        wait_seconds: int = 20,  # Lambda's pollers long-poll for 20 s: an idle queue costs a call per 20 s
    ) -> None:
        self.name = name
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._pool = pool
        # Lambda: BatchSize up to 10 without a batching window, up to 10,000 with one
        self.batching_window = max(0.0, min(300.0, batching_window))
        self.batch_size = max(1, min(10_000 if self.batching_window else 10, batch_size))
        self.concurrency = max(1, concurrency)
        self._report_failures = report_failures
        self._region = region
        self._wait = wait_seconds
        self._stopping = False
        self.stats = {"batches": 0, "records": 0, "deleted": 0, "failed": 0}

    async def run(self) -> None:
        await asyncio.gather(*(self._poller() for _ in range(self.concurrency)))

    def stop(self) -> None:
        self._stopping = True

    async def _poller(self) -> None:
        while not self._stopping:
            try:
                messages = await asyncio.to_thread(self._receive)
            except Exception as exc:
                log.warning("%s: receive failed: %s", self.name, exc)
                await asyncio.sleep(1)
                continue
            if not messages:
                continue
            await self._deliver(messages)

    def _receive(self) -> list[dict[str, Any]]:
        """One batch, as Lambda's poller gathers it: what one long poll returns; with a
        batching window (MaximumBatchingWindowInSeconds), more polls until the batch holds
        BatchSize records or the window, counted from the first record, has passed."""
        messages = self._poll(self.batch_size, self._wait)
        if not messages or not self.batching_window:
            return messages
        closes = time.monotonic() + self.batching_window
        while len(messages) < self.batch_size:
            left = closes - time.monotonic()
            if left <= 0:
                break
            messages += self._poll(self.batch_size - len(messages), min(20, int(left)), left)
        return messages

    def _poll(self, wanted: int, wait: int, left: float | None = None) -> list[dict[str, Any]]:
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, wanted),
            # a long poll no longer than what is left of the window (whole seconds for SQS)
            WaitTimeSeconds=wait if left is None or left >= 1 else 0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        if not messages and left is not None and left < 1:
            time.sleep(min(left, 0.05))
        return messages

    async def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue_arn, self._region) for m in messages]}
        self.stats["batches"] += 1
        self.stats["records"] += len(messages)
        try:
            result = await self._pool.invoke(event)
        except InvocationError as exc:
            # The whole batch stays in the queue and comes back after its visibility timeout.
            self.stats["failed"] += len(messages)
            log.warning("%s: batch of %d failed (%s); messages will be redelivered", self.name, len(messages), exc)
            return
        log.debug("%s: batch of %d -> %s", self.name, len(messages), result)
        failed_ids: set[str] = set()
        if self._report_failures and isinstance(result, dict):
            failed_ids = {f.get("itemIdentifier", "") for f in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        self.stats["failed"] += len(messages) - len(done)
        if done:
            await asyncio.to_thread(self._delete, done)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        try:
            answer = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self.stats["deleted"] += len(answer.get("Successful", []))
        except Exception as exc:
            log.warning("%s: delete failed: %s", self.name, exc)
