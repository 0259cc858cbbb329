"""``make run``: the whole stack on one machine, no Docker, no AWS account.

- an embedded AWS endpoint (moto's server) on 127.0.0.1:4566, or the one in AWS_ENDPOINT_URL;
- the tables and queues declared in template.yaml;
- every function of template.yaml in reusable worker processes, fed real event payloads
  (API Gateway HTTP API events, SQS batches via event source mappings, schedules);
- the stream function run as Lambda Web Adapter runs it (its script starts uvicorn);
- one HTTP front on 127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .esm import SqsEventSource
from .front import Front
from .iam import function_credentials, policy_file, write_policy_file
from .pool import FunctionPool, child_env
from .procs import die_with_parent, free_port, port_open, wait_for_port
from .provision import provision
from .template import ROOT, Resolver, evaluate_conditions, functions, load_template, parameter_defaults

log = logging.getLogger("taskrunner.local")
LOCAL_ENV_FILE = ROOT / "infra" / "sam" / "env.local.json"
DEV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# A well-known key for this laptop's stack only (the README's curl examples use it);
# deployments have no such key: create them with `python -m infra.keys`.
DEV_API_KEY = "tr_dev00000_local-development-key"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m infra.local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8000")), help="HTTP front port (default 8000, or $PORT)"
    )
    p.add_argument(
        "--endpoint",
        default=os.environ.get("AWS_ENDPOINT_URL", ""),
        help="AWS endpoint to use instead of the embedded one (LocalStack, a moto server, or empty for embedded)",
    )
    p.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "4566")))
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=int(os.environ.get("LOCAL_MAX_CONCURRENCY", "4")),
        help="cap on each function's concurrent environments",
    )
    p.add_argument(
        "--reconcile-every",
        type=float,
        default=float(os.environ.get("RECONCILE_EVERY", "10")),
        help="seconds between reconciler runs (AWS: the template's schedule)",
    )
    p.add_argument(
        "--prefix",
        default=os.environ.get("LOCAL_STACK_PREFIX", "taskrunner-local"),
        help="name prefix of the tables and queues",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra environment variable for every function"
    )
    p.add_argument("--state-file", default=os.environ.get("LOCAL_STATE_FILE", str(ROOT / ".local" / "runner.json")))
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def load_local_env() -> dict[str, dict[str, str]]:
    if not LOCAL_ENV_FILE.exists():
        return {}
    data: dict[str, dict[str, str]] = json.loads(LOCAL_ENV_FILE.read_text())
    return data


def start_moto(port: int, iam_policy: Path) -> subprocess.Popen[bytes]:
    if port_open("127.0.0.1", port):
        raise SystemExit(
            f"port {port} is already in use; stop what listens there, pass --moto-port, "
            f"or point AWS_ENDPOINT_URL at it if it is an AWS endpoint"
        )
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter
        [
            sys.executable,
            *("-m", "infra.local.moto_server", "-H", "127.0.0.1", "-p", str(port)),
            *("--iam-policy", str(iam_policy)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - needed so it dies with us
    )
    threading.Thread(target=_forward_denials, args=(proc,), daemon=True, name="iam-denials").start()
    if not wait_for_port("127.0.0.1", port, 20):
        proc.kill()
        raise SystemExit("the embedded AWS endpoint (moto) did not start")
    return proc


def _forward_denials(proc: subprocess.Popen[bytes]) -> None:
    """The endpoint's IAM denials on our console; the rest of its output is moto's noise."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(b"IAM "):
            sys.stderr.write(line.decode(errors="replace"))
            sys.stderr.flush()


def iam_paths(state_file: str) -> tuple[Path, Path]:
    """(policy file, calls log) of a runner, next to its state file."""
    state = Path(state_file)
    return state.with_name(state.stem + ".iam-policy.json"), state.with_name(state.stem + ".iam-calls.jsonl")


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.moto: subprocess.Popen[bytes] | None = None
        self.stream_proc: asyncio.subprocess.Process | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.sources: list[SqsEventSource] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.summary: list[tuple[str, str]] = []
        self.iam = False
        self._esm_clients: dict[str, Any] = {}

    async def start(self) -> Any:
        t0 = time.perf_counter()
        args = self.args
        base_env = dict(os.environ)
        for key, value in DEV_CREDENTIALS.items():
            base_env.setdefault(key, value)
        region = base_env.get("AWS_REGION") or base_env.get("AWS_DEFAULT_REGION") or "us-east-1"
        base_env["AWS_REGION"] = base_env["AWS_DEFAULT_REGION"] = region
        endpoint = args.endpoint
        # IAM: the embedded endpoint checks every function's calls against its role in the template
        self.iam = not endpoint
        policy_path, calls_log = iam_paths(args.state_file)
        if not endpoint:
            policy_path.parent.mkdir(parents=True, exist_ok=True)
            policy_path.unlink(missing_ok=True)
            calls_log.write_text("")
            self.moto = start_moto(args.moto_port, policy_path)
            endpoint = f"http://127.0.0.1:{args.moto_port}"
            self.summary.append(("AWS endpoint", f"{endpoint} (embedded moto server)"))
            self.summary.append(
                ("IAM", f"each function's calls checked against its role in template.yaml: {calls_log}")
            )
        else:
            self.summary.append(("AWS endpoint", f"{endpoint} (AWS_ENDPOINT_URL)"))
            self.summary.append(
                ("IAM", f"enforced by {endpoint}, not by the runner (LocalStack: ENFORCE_IAM=1); functions share a key")
            )
        os.environ.update({k: base_env[k] for k in (*DEV_CREDENTIALS, "AWS_REGION", "AWS_DEFAULT_REGION")})
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(region_name=region)
        template = load_template()
        resolver = Resolver(parameters=parameter_defaults(template), physical={}, region=region)
        resolver.conditions = evaluate_conditions(template, resolver)
        await asyncio.to_thread(provision, template, resolver, session, endpoint, args.prefix)
        tables = [k for k, v in resolver.physical.items() if "QueueUrl" not in v]
        queues = [k for k, v in resolver.physical.items() if "QueueUrl" in v]
        self.summary.append(("tables", ", ".join(f"{t} ({resolver.physical[t]['Ref']})" for t in tables)))
        self.summary.append(("queues", ", ".join(queues)))

        api_key = os.environ.get("LOCAL_DEV_API_KEY", DEV_API_KEY)
        if "ApiKeysTable" in resolver.physical:
            from taskrunner.adapters.dynamodb_keys import DynamoDbApiKeyStore

            from ..keys import create_key

            store = DynamoDbApiKeyStore(
                session.client("dynamodb", endpoint_url=endpoint), resolver.physical["ApiKeysTable"]["Ref"]
            )
            await asyncio.to_thread(create_key, store, "dev", "local development key", api_key)
            self.summary.append(("API key", f"{api_key}  (owner 'dev'; send as X-Api-Key)"))
        local_env = load_local_env()
        extra = dict(kv.split("=", 1) for kv in args.set)
        specs = functions(template)
        fn_dir = str(ROOT / "functions")
        envs: dict[str, dict[str, str]] = {}
        for name, spec in specs.items():
            resolved = {k: str(resolver.resolve(v)) for k, v in spec.environment.items()}
            resolved.update(local_env.get("Parameters", {}))
            resolved.update(local_env.get(name, {}))
            resolved.update(extra)
            resolved.update(
                {
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_REGION": region,
                    "AWS_DEFAULT_REGION": region,
                    "AWS_LAMBDA_FUNCTION_NAME": name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                    "LAMBDA_TASK_ROOT": fn_dir,
                }
            )
            envs[name] = child_env(base_env, resolved)
            if self.iam:  # its own key, as Lambda gives each function its execution role's
                envs[name].update(function_credentials(name))
            envs[name]["PATH"] = os.path.dirname(sys.executable) + os.pathsep + envs[name].get("PATH", "")
        if self.iam:
            policies = await asyncio.to_thread(
                policy_file, template, resolver, calls_log=calls_log, prefix=args.prefix, envs=envs
            )
            write_policy_file(policy_path, policies)

        sqs = session.client(
            "sqs",
            endpoint_url=endpoint,
            config=Config(max_pool_connections=64, retries={"max_attempts": 3, "mode": "standard"}),
        )
        arn_to_logical = {v["Arn"]: k for k, v in resolver.physical.items() if "Arn" in v}
        stream_base = None
        api_pool = None
        for name, spec in specs.items():
            env = envs[name]
            if "AWS_LWA_INVOKE_MODE" in spec.environment or env.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap":
                port = free_port()
                env["PORT"] = str(port)
                script = ROOT / "functions" / spec.handler
                self.stream_proc = await asyncio.create_subprocess_exec(
                    "/bin/sh", str(script), env=env, cwd=fn_dir, preexec_fn=die_with_parent
                )
                stream_base = f"http://127.0.0.1:{port}"
                self.summary.append(
                    (name, f"Lambda Web Adapter style: {spec.handler} -> uvicorn on {stream_base} (response streaming)")
                )
                continue
            sqs_events = spec.events_of("SQS")
            size = args.max_concurrency if spec.events_of("HttpApi") or spec.events_of("Api") else 1
            if sqs_events:
                size = min(
                    args.max_concurrency,
                    sum(
                        int(resolver.resolve((e.get("ScalingConfig") or {}).get("MaximumConcurrency", 2)))
                        for e in sqs_events.values()
                    ),
                )
            pool = FunctionPool(
                name, spec.handler, env, timeout=spec.timeout, memory=spec.memory, size=max(1, size), cwd=fn_dir
            )
            self.pools[name] = pool
            roles = []
            if spec.events_of("HttpApi") or spec.events_of("Api"):
                api_pool = pool
                roles.append(f"HTTP front http://{args.host}:{args.port}")
            for event_name, props in sqs_events.items():
                arn = resolver.resolve(props["Queue"])
                logical = arn_to_logical[arn]
                concurrency = min(
                    int(resolver.resolve((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 2))),
                    args.max_concurrency,
                )
                source = SqsEventSource(
                    f"{name}/{event_name}",
                    self._esm_client(name, sqs, session, endpoint),
                    resolver.physical[logical]["QueueUrl"],
                    arn,
                    pool,
                    batch_size=int(props.get("BatchSize", 10)),
                    concurrency=concurrency,
                    report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    region=region,
                )
                self.sources.append(source)
                roles.append(f"SQS {logical} (batch {source.batch_size}, concurrency {concurrency})")
            for props in {**spec.events_of("ScheduleV2"), **spec.events_of("Schedule")}.values():
                expr = props.get("ScheduleExpression") or props.get("Schedule")
                roles.append(f"schedule {expr} -> every {args.reconcile_every:g} s locally")
                self.tasks.append(asyncio.create_task(self._schedule(pool, args.reconcile_every, name)))
            self.summary.append((name, f"{spec.handler} x{pool.size}: " + "; ".join(roles)))

        if api_pool is None:
            raise SystemExit("template.yaml declares no function with an HttpApi event")
        # Warm one environment of every function, in parallel, so the first requests are fast.
        await asyncio.gather(*(p.prewarm(1) for p in self.pools.values()))
        for source in self.sources:
            self.tasks.append(asyncio.create_task(source.run()))
        if stream_base:
            ok = await asyncio.to_thread(wait_for_port, "127.0.0.1", int(stream_base.rsplit(":", 1)[1]), 30)
            if not ok:
                raise SystemExit("the stream function did not start")
        self.ready_seconds = time.perf_counter() - t0
        self.endpoint = endpoint
        self.state = {
            "url": f"http://{args.host}:{args.port}",
            "endpoint": endpoint,
            "stream": stream_base,
            "pid": os.getpid(),
            "physical": resolver.physical,
            "api_key": api_key,
            "signing_secret": envs.get("ApiFunction", {}).get("SIGNING_SECRET", ""),
            "iam": {"enforced": self.iam, "policy": str(policy_path), "calls_log": str(calls_log)}
            if self.iam
            else {"enforced": False, "by": endpoint},
        }
        return Front(api_pool, stream_base)

    def _esm_client(self, function: str, sqs: Any, session: Any, endpoint: str) -> Any:
        """The SQS client of a function's event source mapping: AWS polls with the function's role."""
        if not self.iam:
            return sqs
        if function in self._esm_clients:
            return self._esm_clients[function]
        creds = function_credentials(function)
        self._esm_clients[function] = client = session.client(
            "sqs",
            endpoint_url=endpoint,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds["AWS_SESSION_TOKEN"],
            config=sqs.meta.config,
        )
        return client

    async def _schedule(self, pool: FunctionPool, every: float, name: str) -> None:
        while True:
            await asyncio.sleep(every)
            event = {
                "version": "0",
                "id": os.urandom(8).hex(),
                "detail-type": "Scheduled Event",
                "source": "aws.scheduler",
                "account": "123456789012",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": os.environ.get("AWS_REGION", "us-east-1"),
                "resources": [f"arn:aws:scheduler:us-east-1:123456789012:schedule/default/{name}"],
                "detail": {},
            }
            try:
                await pool.invoke(event)
            except Exception as exc:
                log.warning("%s: scheduled run failed: %s", name, exc)

    async def stop(self) -> None:
        for source in self.sources:
            source.stop()
        for task in self.tasks:
            task.cancel()
        for pool in self.pools.values():
            await pool.close()
        if self.stream_proc and self.stream_proc.returncode is None:
            self.stream_proc.terminate()
        if self.moto and self.moto.poll() is None:
            self.moto.terminate()


async def amain(args: argparse.Namespace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import uvicorn

    # Pollers block in long polls: give them threads enough that none waits for another.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=128, thread_name_prefix="local"))
    stack = Stack(args)
    try:
        front = await stack.start()
    except BaseException:
        await stack.stop()
        raise
    config = uvicorn.Config(
        front,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await stack.stop()
            raise SystemExit(f"could not listen on {args.host}:{args.port} (in use? pass --port)")
        await asyncio.sleep(0.02)
    state_file = Path(args.state_file)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(stack.state, indent=2))
    width = max(len(k) for k, _ in stack.summary)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in stack.summary]
    print("taskrunner local stack\n" + "\n".join(lines), flush=True)
    print(
        f"ready in {stack.ready_seconds + 0:.1f} s: http://{args.host}:{args.port}  (docs: /docs; Ctrl-C stops)",
        flush=True,
    )
    try:
        await serving
    finally:
        await stack.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    for noisy in ("botocore", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
