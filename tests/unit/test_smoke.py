"""The smoke test's verdicts, against a fake API that breaks one thing at a time."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from infra import smoke
from infra.local.procs import free_port
from tests.support.fake_api import KEY, FakeApi
from tests.support.stack import ROOT

CALLBACK = "https://receiver.example/hook"


def run(api: FakeApi, *extra: str, callback: bool = True) -> tuple[int, list[str]]:
    out = io.StringIO()
    args = ["--url", api.url, "--key", KEY, "--timeout", "3", *extra]
    code = smoke.main([*args, *(["--callback", CALLBACK] if callback else [])], out=out)
    return code, out.getvalue().splitlines()


def verdicts(lines: list[str]) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in lines if line.startswith(("PASS ", "FAIL "))}


STEPS = ["health", "types", "auth", "submit", "stream", "state", "list", "cancel", "callback"]


@pytest.mark.parametrize("redirect", [False, True], ids=["served-directly", "aws-307"])
def test_every_step_passes_against_a_sound_api(redirect):
    with FakeApi() as api:
        api.redirect = redirect
        code, lines = run(api)
    assert code == 0, lines
    assert verdicts(lines) == dict.fromkeys(STEPS, "PASS")
    assert lines[-1] == "smoke: 9 passed, 0 failed"
    assert lines[0] == f"smoke test of {api.url} (key tr_fake0000_…)"
    text = "\n".join(lines)
    assert "very-secret-part" not in text and "tok-" not in text
    streams = [r for r in api.seen if "/fn/" in r["path"]]
    if redirect:
        # Followed to the "Function URL" twice (read, then resume): token only, never the key.
        assert len(streams) == 2 and not any("X-Api-Key" in r["headers"] for r in streams)
        assert streams[1]["headers"].get("Last-Event-ID") == "2"
        assert "via 307 to" in text
    else:
        assert streams == []


def test_a_failing_dependency_fails_that_step_only():
    with FakeApi() as api:
        api.health = "sqs-down"
        code, lines = run(api, callback=False)
    assert code == 1
    fails = [line for line in lines if line.startswith("FAIL")]
    assert fails == ["FAIL  health    GET /health answered 503 unavailable: dynamodb ok, sqs unavailable: timed out"]
    assert lines[-1] == "smoke: 7 passed, 1 failed"


@pytest.mark.parametrize(
    ("setting", "value", "failed", "why"),
    [
        ("stream", "truncated", {"stream"}, "without the terminal one (last status RUNNING)"),
        ("stream", "failed", {"stream"}, "status FAILED, expected COMPLETED (error: Boom)"),
        ("stream", "ignores-last-id", {"stream"}, "resuming with Last-Event-ID 2 gave events [1, 2, 4]"),
        ("wrong_result", True, {"stream", "state"}, "expected result"),
        ("cancel", "ignored", {"cancel"}, "cancel answered status RUNNING without cancel_requested"),
        ("callback", "FAILED", {"callback"}, "callback FAILED after 1 attempts"),
    ],
)
def test_a_broken_part_fails_its_step(setting, value, failed, why):
    with FakeApi() as api:
        setattr(api, setting, value)
        code, lines = run(api)
    assert code == 1
    assert {step for step, verdict in verdicts(lines).items() if verdict == "FAIL"} == failed
    assert any(line.startswith("FAIL") and why in line for line in lines), lines
    assert lines[-1] == f"smoke: {9 - len(failed)} passed, {len(failed)} failed"


def test_a_crashing_api_is_one_fail_line():
    with FakeApi() as api:
        api.health = "crash"
        code, lines = run(api)
    assert code == 2
    assert len(lines) == 3 and lines[1].startswith("FAIL  health    GET ")
    assert "answered 500 Internal Server Error: the API fails" in lines[1]
    assert lines[-1] == "smoke: 0 passed, 1 failed"


def test_json_report():
    with FakeApi() as api:
        api.wrong_result = True
        out = io.StringIO()
        code = smoke.main(["--url", api.url, "--key", KEY, "--timeout", "3", "--json"], out=out)
    report = json.loads(out.getvalue())
    assert code == 1 and report["ok"] is False
    assert (report["passed"], report["failed"]) == (6, 2)
    assert [s["step"] for s in report["steps"]] == STEPS[:-1]


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}", "not-a-url"])
def test_an_unreachable_url_is_one_clear_line_without_traceback(url):
    done = subprocess.run(
        [sys.executable, "-m", "infra.smoke", "--url", url.format(port=free_port()), "--key", KEY, "--timeout", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[1].startswith("FAIL  health    ")
    assert "cannot reach http://127.0.0.1:" in lines[1] or "is not an http(s) URL" in lines[1]
    assert lines[-1] == "smoke: 0 passed, 1 failed"
    assert "very-secret-part" not in done.stdout


def test_no_follow_stream_checks_the_handover_without_opening_the_stream():
    with FakeApi() as api:
        api.redirect = True
        code, lines = run(api, "--no-follow-stream", callback=False)
        assert code == 0, lines
        assert "307 to" in next(line for line in lines if " stream " in line)
        assert not [r for r in api.seen if "/fn/" in r["path"]]  # the stream URL was never opened
    with FakeApi() as api:  # an API that serves the stream itself gives no handover: FAIL
        code, lines = run(api, "--no-follow-stream", callback=False)
    assert code == 1 and verdicts(lines)["stream"] == "FAIL"
