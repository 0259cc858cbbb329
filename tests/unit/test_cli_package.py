"""The CLI package's own parts: exit codes, state-file discovery, short ids, wait, retry, attempts,
long tasks (segments, the stream's time limit), and that no Lambda bundle carries it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import taskrunner_cli
from taskrunner_cli import app as cli
from taskrunner_cli.display import RichProgressDisplay, format_attempts, progress_line

from tests.support.fake_api import KEY, FakeApi
from tests.unit.test_cli import TASK_ID, ScriptedTransport, links, task
from tests.unit.test_cli import run as run_fake

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api():
    fake = FakeApi()
    with fake:
        yield fake


def run(api, *argv, env=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", api.url, "--api-key", KEY, *argv], env=env or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def submitted(api, name="sleep", **parameters):
    code, out, err = run(api, "submit", name, *(f"{k}={json.dumps(v)}" for k, v in parameters.items()))
    assert code == 0, err
    return out.strip()


# ---------------------------------------------------------------------------- exit codes


def test_version_and_module_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "taskrunner_cli", "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, f"taskrunner {taskrunner_cli.__version__}\n")


def test_usage_errors_exit_2(capsys):
    for bad in (["frobnicate"], ["retry"], ["state", TASK_ID, "--bogus"], []):
        with pytest.raises(SystemExit) as stopped:
            cli.parse_args(bad)
        assert stopped.value.code == 2


@pytest.mark.parametrize(("status", "code"), [("COMPLETED", 0), ("RUNNING", 0), ("FAILED", 1), ("CANCELLED", 1)])
def test_state_exits_by_the_tasks_outcome(api, status, code):
    task_id = submitted(api)
    api.tasks[task_id]["status"] = status
    result = run(api, "state", task_id)
    assert result[0] == code and f"status      {status}" in result[1]
    assert run(api, "state", task_id, "--json")[0] == code


def test_a_refused_key_exits_3(api):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", api.url, "--api-key", "tr_wrong", "list"], env={}, out=out, err=err)
    assert code == 3
    assert err.getvalue() == (
        "taskrunner: error 401: missing or invalid API key (pass --api-key or set TASKRUNNER_API_KEY)\n"
    )


def test_an_unknown_task_exits_2(api):
    assert run(api, "state", "no-such-task") == (2, "", "taskrunner: error 404: task not found\n")


# ---------------------------------------------------------------------------- where the service is


def write_state(directory: Path, url: str, key: str) -> Path:
    (directory / ".local").mkdir(parents=True, exist_ok=True)
    path = directory / ".local" / "runner.json"
    path.write_text(json.dumps({"url": url, "api_key": key, "pid": 1}))
    return path


def test_the_runners_state_is_found_from_any_directory_below_the_repository(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write_state(repo, "http://127.0.0.1:8123", "tr_local")
    deep = repo / "examples" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    opts = cli.resolve_options(cli.parse_args(["types"]), {})
    assert (opts.url, opts.api_key) == ("http://127.0.0.1:8123", "tr_local")

    # not above the repository's root
    write_state(tmp_path, "http://127.0.0.1:9999", "tr_outer")
    (repo / ".local" / "runner.json").unlink()
    opts = cli.resolve_options(cli.parse_args(["types"]), {})
    assert (opts.url, opts.api_key) == ("http://127.0.0.1:8000", None)


def test_state_file_from_flag_or_environment_and_explicit_values_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = write_state(tmp_path / "elsewhere", "http://127.0.0.1:8200", "tr_state")
    for args, env in ((["types", "--state", str(state)], {}), (["types"], {"TASKRUNNER_STATE": str(state)})):
        opts = cli.resolve_options(cli.parse_args(args), env)
        assert (opts.url, opts.api_key) == ("http://127.0.0.1:8200", "tr_state")
    env = {"TASKRUNNER_STATE": str(state)}
    opts = cli.resolve_options(cli.parse_args(["types", "--key", "tr_flag"]), env)
    assert (opts.url, opts.api_key) == ("http://127.0.0.1:8200", "tr_flag")
    opts = cli.resolve_options(cli.parse_args(["types"]), {**env, "TASKRUNNER_API_KEY": "tr_env"})
    assert opts.api_key == "tr_env"
    # the local key goes to the local stack only, not to another URL
    opts = cli.resolve_options(cli.parse_args(["types", "--url", "http://127.0.0.1:9"]), env)
    assert (opts.url, opts.api_key) == ("http://127.0.0.1:9", None)


def test_the_cli_talks_to_the_port_make_run_used(api, tmp_path, monkeypatch):
    write_state(tmp_path, api.url, KEY)
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["types"], env={}, out=out, err=err) == 0, err.getvalue()
    assert "sleep" in out.getvalue()


# ---------------------------------------------------------------------------- short ids


def test_a_unique_prefix_of_six_characters_finds_the_task(api):
    task_id = submitted(api)
    code, out, _ = run(api, "state", task_id[:8])
    assert code == 0 and out.startswith(f"task        {task_id}\n")


def test_an_ambiguous_or_unknown_prefix_exits_2(api):
    first = submitted(api)
    second = submitted(api)
    common = "abcdef"
    api.tasks[first]["task_id"] = common + first[6:]
    api.tasks[second]["task_id"] = common + second[6:]
    code, out, err = run(api, "state", common)
    assert (code, out) == (2, "")
    assert err.startswith("taskrunner: task id 'abcdef' is ambiguous: it starts ")
    assert run(api, "state", "0000000")[2] == "taskrunner: no task id starts with '0000000'\n"
    assert run(api, "state", "abc") == (2, "", "taskrunner: task id 'abc' is too short: give at least 6 characters\n")


# ---------------------------------------------------------------------------- wait, retry, attempts


def test_wait_blocks_until_the_task_ends_and_exits_by_outcome(api):
    done = submitted(api, "sum", numbers=[1, 2])
    assert run(api, "wait", done) == (0, f"{done} COMPLETED\n", "")
    running = submitted(api)
    api.tasks[running]["status"] = "FAILED"  # its stream now ends FAILED
    api.stream = "failed"
    assert run(api, "wait", running)[:2] == (1, f"{running} FAILED\n")


def test_follow_prints_the_result_of_a_task(api):
    task_id = submitted(api, "sum", numbers=[2, 3])
    code, out, _ = run(api, "follow", task_id)
    assert code == 0 and json.loads(out) == {"operation": "sum", "result": 5}


def test_retry_runs_a_failed_task_again_as_a_new_one(api):
    task_id = submitted(api, "sum", numbers=[1, 2])
    api.tasks[task_id]["status"] = "FAILED"
    code, out, err = run(api, "retry", task_id[:8])
    assert code == 0, err
    new_id = out.strip()
    assert new_id != task_id and api.tasks[new_id]["retry_of"] == task_id
    assert api.tasks[new_id]["parameters"] == {"numbers": [1, 2]}
    assert err.startswith(f"retrying {task_id} as sum task {new_id} (PENDING)")
    assert api.seen[-1]["method"] == "POST" and api.seen[-1]["path"] == f"/api/tasks/{task_id}/retry"

    code, out, _ = run(api, "retry", task_id, "--follow")
    assert code == 0 and json.loads(out) == {"operation": "sum", "result": 3}


def test_retry_of_a_task_that_did_not_fail_exits_2(api):
    task_id = submitted(api)
    code, out, err = run(api, "retry", task_id)
    assert (code, out) == (2, "")
    assert err == f"taskrunner: error 409: task {task_id} is RUNNING; only FAILED or CANCELLED\n"


HISTORY = [
    {
        "attempt": 1,
        "started_at": "2026-01-02T03:04:06.000Z",
        "ended_at": "2026-01-02T03:04:07.250Z",
        "duration_ms": 1250,
        "outcome": "RETRYING",
        "error": {
            "type": "TimeoutError",
            "message": "upstream timed out",
            "traceback": ['  File "tasks.py", line 9, in run', "    fetch()"],
        },
    },
    {
        "attempt": 2,
        "started_at": "2026-01-02T03:04:09.000Z",
        "ended_at": "2026-01-02T03:04:09.500Z",
        "duration_ms": 500,
        "outcome": "COMPLETED",
        "error": None,
    },
]


def test_attempts_prints_each_attempt_with_its_error_and_traceback(api):
    task_id = submitted(api)
    api.tasks[task_id]["attempt_history"] = HISTORY
    code, out, _ = run(api, "attempts", task_id)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ATTEMPT", "OUTCOME", "STARTED", "ENDED", "DURATION"]
    assert lines[1].split() == ["1", "RETRYING", "2026-01-02T03:04:06.000Z", "2026-01-02T03:04:07.250Z", "1.250", "s"]
    assert lines[2] == "    TimeoutError: upstream timed out"
    assert lines[3:5] == ['        File "tasks.py", line 9, in run', "          fetch()"]
    assert lines[5].split()[:2] == ["2", "COMPLETED"]
    assert json.loads(run(api, "attempts", task_id, "--json")[1]) == HISTORY
    assert format_attempts([]) == "no attempts yet"


def test_attempts_says_when_the_server_does_not_report_them(api):
    task_id = submitted(api)
    api.attempts_reported = False
    code, out, err = run(api, "attempts", task_id)
    assert (code, out) == (2, "")
    assert err.startswith("taskrunner: the service does not report attempts")


# ---------------------------------------------------------------------------- long tasks


def test_the_progress_shows_the_segment_and_the_hand_over():
    assert progress_line(task("RUNNING", 40, "step 4", segments=1, between_segments=False), width=4) == (
        "[##--]  40.0%  RUNNING    step 4"
    )
    assert progress_line(task("RUNNING", 40, "step 4", segments=3, between_segments=False), width=4) == (
        "[##--]  40.0%  RUNNING    segment 3: step 4"
    )
    assert progress_line(task("RUNNING", 40, None, segments=2, between_segments=True), width=4) == (
        "[##--]  40.0%  RUNNING    segment 2 done, handing over to the next invocation"
    )
    state = cli.format_state(task("RUNNING", 40, segments=2, between_segments=True, max_runtime_seconds=7200))
    assert "segments    segment 2 done, handing over to the next invocation (runs for up to 7200 s in all)" in state
    state = cli.format_state(task("RUNNING", 40, checkpointed_at="2026-01-02T03:04:08.000Z"))
    assert "\ncheckpoint  2026-01-02T03:04:08.000Z" in state and state.startswith(f"task        {TASK_ID}\n")


def test_the_rich_display_shows_status_segment_and_hand_over():
    out = io.StringIO()
    display = RichProgressDisplay(out, force_terminal=False, width=160)
    display.update(task("RUNNING", 50, "half", segments=2, between_segments=True))
    display.finish()
    text = out.getvalue()
    assert "50%" in text and "RUNNING" in text and "handing over to the next invocation" in text


def test_follow_survives_the_streams_time_limit_over_many_segments(service):
    """A task of several segments, followed over three streams each ended by the server's time limit."""
    limit = ": stream time limit reached; reconnect with Last-Event-ID to resume\n\n"
    parts = [
        [task("RUNNING", 10, segments=1, between_segments=False, version=2)],
        [task("RUNNING", 50, segments=1, between_segments=True, version=5)],
        [task("RUNNING", 60, segments=2, between_segments=False, version=7)],
        [task("COMPLETED", 100, segments=2, between_segments=False, version=9)],
    ]
    calls = []

    def stream(request):
        calls.append(request)
        events = parts[len(calls) - 1]
        chunks = ["retry: 1000\n\n"] + [f"id: {t['version']}\ndata: {json.dumps(t)}\n\n" for t in events]
        return 200, chunks + ([limit] if events[-1]["status"] != "COMPLETED" else [])

    service.answer("GET", f"/api/tasks/{TASK_ID}/state", 200, task("RUNNING", 10, version=2, links=links("fresh")))
    service.route("GET", f"/api/tasks/{TASK_ID}", stream)
    code, out, err = run_fake(service, "follow", TASK_ID)
    assert code == 0, err
    assert json.loads(out) == {"slept_seconds": 2}
    assert [c["headers"].get("last-event-id") for c in calls] == [None, "2", "5", "7"]
    assert "segment 1 done, handing over to the next invocation" in err
    assert "segment 2" in err


def test_an_unauthorized_event_ends_the_follow_with_exit_3():
    transport = ScriptedTransport(
        answers=[(200, task("RUNNING")), (401, {"detail": "API key revoked"})],
        streams=[['event: unauthorized\ndata: {"status": 401, "detail": "API key revoked"}\n\n']],
    )
    out, err = io.StringIO(), io.StringIO()
    env = {"TASKRUNNER_URL": "http://service.test", "TASKRUNNER_API_KEY": KEY}
    code = cli.main(["follow", TASK_ID], transport=transport, env=env, out=out, err=err)
    assert code == 3
    assert err.getvalue().endswith(
        "taskrunner: error 401: API key revoked (pass --api-key or set TASKRUNNER_API_KEY)\n"
    )


# ---------------------------------------------------------------------------- packaging


def test_no_lambda_bundle_carries_the_cli():
    """Bundles copy functions/taskrunner (functions/Makefile, infra/local/bundles.py): the CLI lives elsewhere."""
    functions = ROOT / "functions"
    assert not (functions / "taskrunner" / "cli.py").exists()
    # what bundles are made of (an install's *.egg-info, which carries the README, is not)
    sources = [
        p
        for p in functions.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not any(part.endswith(".egg-info") for part in p.parts)
    ]
    assert not [p for p in sources if "taskrunner_cli" in p.read_text(errors="replace")]
    makefile = (functions / "Makefile").read_text()
    assert "cp -R taskrunner " in makefile and "cli" not in makefile.replace("cli.", "")
    for requirements in (functions / "requirements").glob("*.txt"):
        names = {line.split("==")[0].lower() for line in requirements.read_text().splitlines()}
        assert not names & {"taskrunner-cli", "rich"}, requirements.name
    assert Path(taskrunner_cli.__file__).resolve().parent == ROOT / "cli" / "taskrunner_cli"
