"""The queues' depths as Prometheus gauges, read with SQS GetQueueAttributes when scraped.

Shared by the local runner's ``/metrics`` (infra/local/metrics.py) and the API's opt-in
``GET /api/metrics`` (entrypoints/api_metrics.py), so both name them alike. Needs
prometheus-client (the API bundle and the dev virtualenv have it; the other bundles do not
import this module)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
PREFIX = "taskrunner"
QUEUE_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "QueueArn",
    "RedrivePolicy",
]
COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class QueueDepths(Collector):
    """Gauges per queue (label ``queue``: the template's logical id): visible, in flight and
    delayed messages, the dead-letter queues' depth apart (a queue is one when another's
    RedrivePolicy targets it), and the oldest message's age when ``oldest_ages`` (queue name ->
    seconds) is given: SQS answers that only through CloudWatch (ApproximateAgeOfOldestMessage).
    A queue whose attributes cannot be read is left out of the scrape (and logged)."""

    def __init__(
        self, sqs: Any, queues: Mapping[str, str], oldest_ages: Callable[[], dict[str, float]] | None = None
    ) -> None:
        self.sqs = sqs
        self.queues = {logical: url for logical, url in queues.items() if url}  # logical id -> URL
        self.oldest_ages = oldest_ages

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not call SQS

    def collect(self) -> Iterable[Metric]:
        visible = GaugeMetricFamily(
            f"{PREFIX}_queue_messages_visible",
            "Messages available for retrieval (ApproximateNumberOfMessages)",
            labels=["queue"],
        )
        in_flight = GaugeMetricFamily(
            f"{PREFIX}_queue_messages_in_flight",
            "Messages received and not yet deleted (ApproximateNumberOfMessagesNotVisible)",
            labels=["queue"],
        )
        delayed = GaugeMetricFamily(
            f"{PREFIX}_queue_messages_delayed",
            "Messages not yet available (ApproximateNumberOfMessagesDelayed)",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(
            f"{PREFIX}_dead_letter_queue_messages",
            "Messages in a dead-letter queue (visible and in flight)",
            labels=["queue"],
        )
        answers: dict[str, dict[str, str]] = {}
        for logical, url in self.queues.items():
            try:
                answer = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_ATTRIBUTES)
                answers[logical] = answer["Attributes"]
            except Exception as exc:
                log.warning("metrics: GetQueueAttributes %s failed: %s", logical, exc)
        targets = {
            json.loads(attrs["RedrivePolicy"]).get("deadLetterTargetArn")
            for attrs in answers.values()
            if attrs.get("RedrivePolicy")
        }
        for logical, attrs in answers.items():
            counts = [float(attrs.get(name, 0)) for name in COUNTS]
            visible.add_metric([logical], counts[0])
            in_flight.add_metric([logical], counts[1])
            delayed.add_metric([logical], counts[2])
            if attrs.get("QueueArn") in targets:
                dead.add_metric([logical], counts[0] + counts[1])
        yield from (visible, in_flight, delayed, dead)
        if self.oldest_ages is None:
            return
        try:
            ages = self.oldest_ages()
        except Exception as exc:
            log.warning("metrics: oldest message ages unavailable: %s", exc)
            return
        oldest = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_message_age_seconds",
            "Age of the queue's oldest message (0 when empty)",
            labels=["queue"],
        )
        for logical, url in self.queues.items():
            oldest.add_metric([logical], ages.get(url.rstrip("/").rsplit("/", 1)[-1], 0.0))
        yield oldest
