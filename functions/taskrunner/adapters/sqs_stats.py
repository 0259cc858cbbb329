"""Queue depths for the monitor: SQS GetQueueAttributes on each task queue and dead-letter queue.

SQS answers approximate numbers (visible, in flight, delayed). The age of a queue's oldest
message is not a queue attribute (it is CloudWatch's ApproximateAgeOfOldestMessage metric), so
it is not reported here; the monitor derives the age of the owner's oldest PENDING task instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .aws import translated

ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class SqsQueueStats:
    def __init__(self, client: Any, queues: Sequence[tuple[str, str, str]]) -> None:
        """``queues``: (name, kind, url) for each queue to report; empty urls are skipped."""
        self._sqs = client
        self._queues = [q for q in queues if q[2]]

    def depths(self) -> list[dict[str, Any]]:
        answer = []
        for name, kind, url in self._queues:
            with translated("SQS"):
                found = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(ATTRIBUTES))
            values = found.get("Attributes", {})
            answer.append(
                {
                    "name": name,
                    "kind": kind,
                    "visible": int(values.get("ApproximateNumberOfMessages", 0)),
                    "in_flight": int(values.get("ApproximateNumberOfMessagesNotVisible", 0)),
                    "delayed": int(values.get("ApproximateNumberOfMessagesDelayed", 0)),
                }
            )
        return answer
