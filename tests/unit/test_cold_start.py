"""Cold start: what importing a handler module leaves for later (bench/coldstart.py times it).

Each check runs in a fresh interpreter and looks at sys.modules, so it holds on any machine,
where a timing assertion would not: the API's import is FastAPI's and nothing of ours beyond
it; the SQS handlers import neither pydantic nor the task types, which only the worker and
the API's submissions need, and then only when a task type is looked up."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {roots!r} or name.startswith({ours!r}))))
"""

# loaded by the first invocation (or never, by functions that do not need them)
SDKS = ["boto3", "botocore", "aws_lambda_powertools", "aws_xray_sdk"]
TASK_TYPES = ["pydantic", "taskrunner.tasks"]
API_LATER = [
    "mangum",
    "prometheus_client",
    "fastapi_offline",
    "taskrunner.bootstrap",
    "taskrunner.adapters",
    "taskrunner.entrypoints.api_",
    "taskrunner.entrypoints.dashboard",
    "taskrunner.entrypoints.sse",
    "taskrunner.tasks",
]


def _loaded(module: str, unwanted: list[str]) -> list[str]:
    roots = tuple(name for name in unwanted if "." not in name)
    ours = tuple(name for name in unwanted if "." in name)
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, roots=roots, ours=ours)],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        # the worktree's functions/ first, whatever the environment has installed
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(ROOT / "functions")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    ("module", "unwanted"),
    [
        ("taskrunner.entrypoints.api", SDKS + API_LATER),
        ("taskrunner.entrypoints.worker", SDKS + TASK_TYPES + ["fastapi"]),
        ("taskrunner.entrypoints.notifier", SDKS + TASK_TYPES + ["fastapi"]),
        ("taskrunner.entrypoints.dead_letter", SDKS + TASK_TYPES + ["fastapi"]),
        ("taskrunner.entrypoints.reconciler", SDKS + TASK_TYPES + ["fastapi"]),
    ],
)
def test_handler_import_leaves_for_later(module, unwanted):
    assert _loaded(module, unwanted) == []


SERVICES = """
import sys
from taskrunner.bootstrap import build_services
from taskrunner.config import Settings
services = build_services(Settings(signing_secret="x"))
assert "taskrunner.tasks.registry" not in sys.modules, "built the task types before any was looked up"
from taskrunner.tasks.registry import BUILTIN_TYPES
assert services.tasks.catalog.names() == sorted(BUILTIN_TYPES)
assert services.tasks.catalog.get("sleep").name == "sleep"
assert [t.name for t in services.tasks.catalog.all()] == sorted(BUILTIN_TYPES)
print("ok")
"""


def test_services_register_the_task_types_when_one_is_first_looked_up():
    result = subprocess.run(
        [sys.executable, "-c", SERVICES],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(ROOT / "functions")},
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
