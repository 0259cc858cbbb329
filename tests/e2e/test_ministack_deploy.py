"""The real template, built by sam and deployed by the SAM CLI into MiniStack (a LocalStack-compatible
emulator, no Docker) on a free loopback port: a task goes through the deployed API, queue and
worker. Everything it needs is installed by make (`make deploy-local`); see README,
"Deploying into a local emulator (MiniStack)". Timings go to tests/e2e/artifacts/ministack.json."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from infra.ministack.check import check
from infra.ministack.emulator import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"


def make(*args: str, timeout: float = 900) -> float:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    started = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"make {' '.join(args)} failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    state = tmp_path_factory.mktemp("ministack")
    where = [f"LOCAL_STATE={state}", f"MINISTACK_PORT={free_port()}"]
    timings = {"sam_build_seconds": make("build-local")}
    try:
        timings["deploy_local_seconds"] = make("deploy-local", *where, "ARGS=--no-check")
        outputs = json.loads((state / "outputs.json").read_text())
        timings["sam_deploy_seconds"] = outputs["deploy_seconds"]
        yield outputs, timings
    finally:
        make("stop-local", f"LOCAL_STATE={state}", timeout=60)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "ministack.json").write_text(json.dumps(timings, indent=2))
        log = state / "ministack.log"
        if log.exists():
            (ARTIFACTS / "ministack.log").write_text(log.read_text()[-200_000:])


def test_deployed_stack_runs_a_task_cancels_and_lists(deployed):
    outputs, timings = deployed
    assert outputs["api_url"].startswith(outputs["endpoint"]) and outputs["endpoint"].startswith("http://127.0.0.1:")
    assert outputs["api_key"] and outputs["stack_name"]
    assert set(outputs["outputs"]) >= {"ApiUrl", "StreamUrl", "TasksTableName", "ApiKeysTableName"}
    started = time.monotonic()
    result = check(outputs["api_url"], outputs["api_key"], timeout=120)
    timings["check_seconds"] = round(time.monotonic() - started, 1)
    assert result["completed_seconds"] < 120


def test_make_smoke_passes_against_the_deployed_stack(deployed):
    """The same smoke test a user runs after `make deploy`, against the deployed API. MiniStack
    does not serve the streaming Function URL (its StreamUrl is AWS's address): the API's 307
    with a stream token is checked without following it; the local runner checks the stream."""
    outputs, timings = deployed
    started = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", "smoke", f"URL={outputs['api_url']}", "ARGS=--no-follow-stream --timeout 120"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}},
            "KEY": outputs["api_key"],
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    timings["smoke_seconds"] = round(time.monotonic() - started, 1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "ministack-smoke.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "smoke: 8 passed, 0 failed", lines
    assert "FAIL" not in done.stdout and "307 to" in done.stdout


def test_workarounds_are_only_the_declared_ones(deployed):
    from infra.ministack.adapt import WORKAROUNDS

    outputs, _ = deployed
    assert set(outputs["workarounds"]) <= set(WORKAROUNDS)
