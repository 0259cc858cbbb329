"""The AWS latency model: measured parts scaled to Lambda's CPU share, AWS's parts added."""

from __future__ import annotations

import pytest

from bench.awsmodel import AWS_PARTS, FULL_VCPU_MB, cpu_scale, model

MEMORY = {"ApiFunction": 512, "WorkerFunction": 1024, "NotifierFunction": 256, "StreamFunction": 128}
MEASURED = {
    "submit": {"parts_ms": {"client_cpu_per_call_ms": {"mean": 2.0}, "no_aws_call": {"p50": 3.0}}},
    "coldstart": {"median_ms": {"ApiFunction": {"import_ms": 300.0, "first_call_ms": 100.0}}},
}


def test_cpu_share_follows_memory_up_to_one_vcpu() -> None:
    assert cpu_scale(FULL_VCPU_MB) == 1.0
    assert cpu_scale(4096) == 1.0  # more memory buys more cores, not a faster one
    assert cpu_scale(512) == pytest.approx(FULL_VCPU_MB / 512)


def test_submit_is_our_scaled_cpu_plus_what_aws_adds() -> None:
    paths = model(MEASURED, MEMORY, 0.5)
    submit = paths["submit (warm), p50"]
    scale = FULL_VCPU_MB / 512
    ours = 3.0 * scale + 2 * 2.0 * scale
    aws = sum(AWS_PARTS[k].ms for k in ("api_gateway", "invoke", "dynamodb", "sqs_send"))
    assert submit["total_ms"] == pytest.approx(ours + aws, abs=0.2)
    assert submit["total_ms"] == pytest.approx(sum(submit["parts_ms"].values()), abs=0.2)


def test_stream_latency_is_bounded_by_its_poll_interval() -> None:
    paths = model(MEASURED, MEMORY, 0.5)
    p50 = paths["status change -> SSE event at the client, p50"]["total_ms"]
    worst = paths["status change -> SSE event at the client, worst case"]["total_ms"]
    assert 250 < p50 < worst and worst - p50 == pytest.approx(250, abs=0.2)


def test_cold_start_bounds_and_unmeasured_functions() -> None:
    paths = model(MEASURED, MEMORY, 0.5)
    upper = paths["cold start, ApiFunction (512 MB), upper bound"]["total_ms"]
    lower = paths["cold start, ApiFunction (512 MB), lower bound"]["total_ms"]
    assert lower == pytest.approx(AWS_PARTS["runtime_init"].ms + 400.0, abs=0.2)
    assert upper == pytest.approx(AWS_PARTS["runtime_init"].ms + 400.0 * FULL_VCPU_MB / 512, abs=0.2)
    assert not any("WorkerFunction" in name for name in paths)  # not measured, not modelled


def test_nothing_measured_models_nothing() -> None:
    assert model({}, MEMORY, 0.5) == {}
