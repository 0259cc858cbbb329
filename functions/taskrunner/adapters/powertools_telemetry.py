"""Telemetry through Powertools: structured JSON logs and CloudWatch EMF metrics."""

from __future__ import annotations

from typing import Any

from ..domain.models import Task


class PowertoolsTelemetry:
    def __init__(self, logger: Any, namespace: str, *, metrics_enabled: bool = True) -> None:
        self._logger = logger
        self._namespace = namespace
        self._metrics_enabled = metrics_enabled

    def task_event(self, event: str, task: Task, **fields: Any) -> None:
        self._logger.info(
            event,
            extra={
                "task_id": task.task_id,
                "task_type": task.name,
                "status": task.status.value,
                "owner": task.owner,
                **fields,
            },
        )

    def metric(self, name: str, value: float, *, unit: str = "Count", task_type: str | None = None) -> None:
        if not self._metrics_enabled:
            return
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(name=name, unit=MetricUnit(unit), value=value, namespace=self._namespace) as metric:
            if task_type:
                metric.add_dimension(name="task_type", value=task_type)
