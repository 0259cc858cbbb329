"""Tracing stays on, as the template turns it on (Tracing: Active): every handler, invoked the
way Lambda invokes it, sends its segments to the X-Ray daemon address it is given."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: the X-Ray SDK patches botocore process-wide.
SCRIPT = """
import json, sys
from taskrunner.entrypoints import api
from tests.support.lambda_context import LambdaContext

event = json.load(open(sys.argv[1]))
event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
response = api.handler(event, LambdaContext("ApiFunction", memory=512, remaining_seconds=29))
print(json.dumps({"status": response["statusCode"]}))
"""


def _lambda_env(daemon_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_XRAY", "_X_AMZN"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
            "LAMBDA_TASK_ROOT": str(ROOT / "functions"),
            "AWS_LAMBDA_FUNCTION_NAME": "ApiFunction",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon_port}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "_X_AMZN_TRACE_ID": "Root=1-6566a1b2-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1",
            "AWS_REGION": "us-east-1",
            "SIGNING_SECRET": "whsec_dGVzdA==",
        }
    )
    return env


def test_api_handler_runs_traced_and_sends_segments(tmp_path):
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    script = tmp_path / "invoke.py"
    script.write_text(SCRIPT)
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(ROOT / "events" / "api_get_state.json")],
            env=_lambda_env(daemon.getsockname()[1]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": 200}
        header, _, body = daemon.recv(65536).decode().partition("\n")
    finally:
        daemon.close()
    assert json.loads(header) == {"format": "json", "version": 1}
    segment = json.loads(body)
    assert segment["trace_id"] == "1-6566a1b2-0123456789abcdef01234567"
    assert segment["name"] == "## handler"  # the handler's subsegment, named by Powertools
