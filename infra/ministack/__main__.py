"""Deploy the built template into MiniStack (or another LocalStack-compatible endpoint).

    python -m infra.ministack deploy [--endpoint URL] [--port N] [--arch x86_64] [--stack NAME]
    python -m infra.ministack stop

`make deploy-local` builds first (sam build for this machine's architecture into
.aws-sam/local/build) and then runs `deploy`, which:
  1. starts MiniStack on 127.0.0.1 unless --endpoint is given or one it started still runs;
  2. writes the MiniStack copy of the built template (infra/ministack/adapt.py, the one place
     that works around what MiniStack lacks) and deploys it with the SAM CLI, with dummy
     credentials and AWS_ENDPOINT_URL set so nothing can reach AWS;
  3. creates an API key (python -m infra.keys --stack NAME create --owner smoke);
  4. writes STATE_DIR/outputs.json (api_url, stream_url, api_key, endpoint, stack_name, ...);
  5. checks the stack through its API (infra/ministack/check.py) unless --no-check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from infra.local.template import _CfnLoader
from infra.ministack import adapt, emulator

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
REGION = "us-east-1"


def aws_env(endpoint: str) -> dict[str, str]:
    """The environment of every AWS call here: the emulator's endpoint and dummy credentials only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 - the emulator's dummy credentials
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    return env


def patched_template(build_dir: Path, overrides: dict[str, str]) -> tuple[Path, dict[str, list[str]]]:
    built = build_dir / "template.yaml"
    if not built.exists():
        raise SystemExit(f"{built} is missing: run `make build-local` (sam build) first")
    template = yaml.load(built.read_text(), Loader=_CfnLoader)  # noqa: S506 - the safe loader with CFN tags
    patched, report = adapt.patch_template(template, overrides)
    out = build_dir / "template.ministack.yaml"  # beside the build: CodeUri paths stay relative to it
    out.write_text(yaml.safe_dump(patched, sort_keys=False))
    return out, report


def client(env: dict[str, str], service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def stack_outputs(env: dict[str, str], stack: str) -> dict[str, str]:
    cfn = client(env, "cloudformation")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def ensure_bucket(env: dict[str, str], bucket: str) -> None:
    s3 = client(env, "s3")
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)


def create_key(env: dict[str, str], stack: str) -> str:
    answer = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "infra.keys", "--stack", stack, "create", "--owner", "smoke", "--name", "deploy-local"],
        env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(answer.stdout)["api_key"]
    return key


def deploy(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    started_here = not args.endpoint
    endpoint = args.endpoint.rstrip("/") if args.endpoint else emulator.start(state_dir, args.port)
    env = aws_env(endpoint)
    overrides = {"Architecture": args.arch, "Stage": args.stage, "LogLevel": "DEBUG"}
    template, report = patched_template(Path(args.build_dir), overrides)
    for name, changed in report.items():
        if changed:
            print(f"MiniStack workaround {name}: {', '.join(changed)}", file=sys.stderr)
    ensure_bucket(env, args.bucket)
    t0 = time.monotonic()
    sam = [
        str(SAM), "deploy",
        "--template-file", str(template),
        "--stack-name", args.stack,
        "--s3-bucket", args.bucket,
        "--s3-prefix", args.stack,
        "--region", REGION,
        "--capabilities", "CAPABILITY_IAM",
        "--no-confirm-changeset", "--no-fail-on-empty-changeset",
        "--parameter-overrides", *[f"{k}={v}" for k, v in overrides.items()],
    ]  # fmt: skip
    with (state_dir / "sam-deploy.log").open("w") as log:
        result = subprocess.run(sam, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    deploy_seconds = round(time.monotonic() - t0, 1)
    if result.returncode != 0:
        print((state_dir / "sam-deploy.log").read_text()[-6000:], file=sys.stderr)
        raise SystemExit(f"sam deploy failed ({result.returncode}) after {deploy_seconds} s")
    outputs = stack_outputs(env, args.stack)
    api_id = outputs["ApiUrl"].split("://", 1)[1].split(".", 1)[0]
    state: dict[str, Any] = {
        "api_url": adapt.local_api_url(endpoint, api_id),
        "stream_url": outputs.get("StreamUrl"),
        "api_key": create_key(env, args.stack),
        "endpoint": endpoint,
        "stack_name": args.stack,
        "region": REGION,
        "architecture": args.arch,
        "emulator_started_here": started_here,
        "deploy_seconds": deploy_seconds,
        "outputs": outputs,
        "workarounds": {name: changed for name, changed in report.items() if changed},
    }
    out = state_dir / "outputs.json"
    out.write_text(json.dumps(state, indent=2))
    print(f"deployed {args.stack} to {endpoint} in {deploy_seconds} s; {out}:")
    for key in ("api_url", "stream_url", "endpoint", "stack_name"):
        print(f"  {key:11} {state[key]}")
    print(f"  {'api_key':11} {state['api_key'][:12]}... (in {out.name})")
    if not args.no_check:
        from infra.ministack.check import check

        t1 = time.monotonic()
        state["check"] = check(state["api_url"], state["api_key"], log=lambda m: print(f"  check: {m}"))
        state["check"]["seconds"] = round(time.monotonic() - t1, 1)
        out.write_text(json.dumps(state, indent=2))
        print(f"check passed in {state['check']['seconds']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.ministack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state-dir", default=str(ROOT / ".local" / "ministack"))
    sub = parser.add_subparsers(dest="command", required=True)
    dep = sub.add_parser("deploy", help="deploy .aws-sam/local/build into MiniStack and check it")
    dep.add_argument("--endpoint", default="", help="another LocalStack-compatible endpoint (none is started)")
    dep.add_argument("--port", type=int, help="loopback port for a MiniStack started here (default 4566 or a free one)")
    dep.add_argument("--arch", default="x86_64", choices=["arm64", "x86_64"], help="the build's architecture")
    dep.add_argument("--stack", default="taskrunner-local")
    dep.add_argument("--stage", default="local")
    dep.add_argument("--bucket", default="taskrunner-local-artifacts")
    dep.add_argument("--build-dir", default=str(ROOT / ".aws-sam" / "local" / "build"))
    dep.add_argument("--no-check", action="store_true", help="skip the check through the deployed API")
    sub.add_parser("stop", help="stop the MiniStack this state directory started")
    args = parser.parse_args(argv)
    if args.command == "stop":
        stopped = emulator.stop(Path(args.state_dir).resolve())
        print("MiniStack stopped" if stopped else "no MiniStack started here was running")
        return 0
    return deploy(args)


if __name__ == "__main__":
    raise SystemExit(main())
