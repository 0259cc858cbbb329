"""`make deploy STAGE=…` deploys that stage, and `make deploy-localstack` can only reach a
local endpoint."""

import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


def recipe(*args):
    """The commands make would run for a target (nothing is run)."""
    done = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout.replace("\\\n", " "), done.stderr


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deploy_uses_the_stages_own_environment(stage):
    code, out, err = recipe("deploy", f"STAGE={stage}")
    assert code == 0, err
    deploy = [line for line in out.splitlines() if "sam deploy" in line]
    assert deploy, out
    words = shlex.split(deploy[-1])
    assert words[words.index("--config-env") + 1] == stage
    assert "--parameter-overrides" not in words, "overrides on the command line replace the stage's settings"
    params = SAMCONFIG[stage]
    assert params["global"]["parameters"]["stack_name"] == f"taskrunner-{stage}"
    assert f'Stage="{stage}"' in params["deploy"]["parameters"]["parameter_overrides"]


def test_deploy_refuses_an_unknown_stage():
    done = subprocess.run(
        ["make", "deploy", "STAGE=nope", "-o", "build"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and "no [nope] environment" in done.stderr


def test_deploy_localstack_only_talks_to_the_local_endpoint():
    code, out, err = recipe("deploy-localstack")
    assert code == 0, err
    line = next(line for line in out.splitlines() if "sam deploy" in line)
    words = shlex.split(line)
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert env["AWS_ENDPOINT_URL"].startswith(("http://127.0.0.1:", "http://localhost:"))
    # dummy credentials: even an endpoint setting that were ignored could not reach an account
    assert env["AWS_ACCESS_KEY_ID"] == "test" and env["AWS_SECRET_ACCESS_KEY"] == "test"
    assert {"-u", "AWS_PROFILE"} <= set(words) and words[words.index("--config-env") + 1] == "localstack"
    assert SAMCONFIG["localstack"]["deploy"]["parameters"]["confirm_changeset"] is False


def test_make_help_lists_every_target():
    text = (ROOT / "Makefile").read_text()
    phony = set(next(line for line in text.splitlines() if line.startswith(".PHONY:")).split(":", 1)[1].split())
    shown = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[1] for line in shown.splitlines() if line.strip().startswith("make ")}
    assert "test-e2e" in listed
    assert phony <= listed, f"targets without a '## ' description: {sorted(phony - listed)}"
