"""The stack's lifecycle: the embedded endpoint, the template's resources, every function's
environments wired to their events (HTTP, SQS, schedules), then stopped in order."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from botocore.config import Config

from .assemble import assemble
from .endpoint import fresh, iam_paths, start_moto
from .esm import SqsEventSource
from .exceptions import SECRET_VALUES, LocalException, local_exceptions
from .front import Front
from .iam import function_credentials, policy_file, write_policy_file
from .options import function_timeouts
from .pool import SYNC_PAYLOAD_LIMIT, FunctionPool
from .procs import die_with_parent, free_port, wait_for_port
from .runtime import FUNCTIONS_DIR, function_environment, is_web_adapter, pool_size, prepare_runtime
from .template import ROOT, FunctionSpec, Resolver, functions, load_template
from .xray import XRayDaemon

log = logging.getLogger("taskrunner.local")
DEV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# A well-known key for this laptop's stack only (the README's curl examples use it);
# deployments have no such key: create them with `python -m infra.keys`.
DEV_API_KEY = "tr_dev00000_local-development-key"


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
        self.exceptions: list[LocalException] = []
        self.xray: XRayDaemon | None = None
        self.metrics: Any = None

    async def start(self) -> Any:
        """Everything up, in order: the endpoint, the template's resources and the dev key, the
        functions' environments (and their IAM roles), each function wired to its events; the
        HTTP front that serves them is returned."""
        t0 = time.perf_counter()
        args = self.args
        state_dir = Path(args.state_file).with_suffix("")
        logs_dir = state_dir / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        credentials = {k: os.environ.get(k) or v for k, v in DEV_CREDENTIALS.items()}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        policy_path, calls_log = iam_paths(args.state_file)
        endpoint = self._start_endpoint(policy_path, calls_log)
        os.environ.update({**credentials, "AWS_REGION": region, "AWS_DEFAULT_REGION": region})
        import boto3

        session = boto3.session.Session(region_name=region)
        template = load_template()
        specs = functions(template)
        timeouts = function_timeouts(args.function_timeout, specs)
        for name, seconds in timeouts.items():
            specs[name].timeout = seconds
        runtime_task = asyncio.create_task(
            asyncio.to_thread(prepare_runtime, list(specs), args.quick_env, ROOT / ".local" / "bundles")
        )
        resolver, api_key = await self._provision(session, endpoint, region, template)

        self.xray = XRayDaemon(state_dir / "xray-segments.jsonl")
        xray_address = await self.xray.start()
        stream_names = [n for n, spec in specs.items() if is_web_adapter(spec)]
        stream_port = free_port() if stream_names else None
        self.exceptions = local_exceptions(
            endpoint=endpoint,
            credentials=None if self.iam else credentials,
            xray_address=xray_address,
            stream_port=stream_port,
            user=dict(kv.split("=", 1) for kv in args.set),
            timeouts=timeouts,
            embedded=not args.endpoint,
        )
        runtime = await runtime_task
        self.summary.append(("functions run on", runtime.note))
        envs = {
            name: function_environment(spec, resolver, region, runtime, self.exceptions) for name, spec in specs.items()
        }
        if self.iam:  # each its own key, as Lambda gives each function its execution role's
            for name, env in envs.items():
                env.update(function_credentials(name))
            policies = await asyncio.to_thread(
                policy_file, template, resolver, calls_log=calls_log, prefix=args.prefix, envs=envs
            )
            write_policy_file(policy_path, policies)
        self.summary.append(("function logs", f"{logs_dir}/<Function>.log (logs and EMF metrics; warnings also here)"))
        self.summary.append(("X-Ray daemon", f"udp {xray_address} -> {self.xray.out}"))

        sqs = session.client(
            "sqs",
            endpoint_url=endpoint,
            config=Config(max_pool_connections=64, retries={"max_attempts": 3, "mode": "standard"}),
        )
        stream_base = None
        api_pool = None
        for name, spec in specs.items():
            log_path = logs_dir / f"{name}.log"
            if name in stream_names:
                stream_base = await self._start_stream(name, spec, envs[name], log_path, stream_port or 0, resolver)
                continue
            pool = self._start_pool(name, spec, envs[name], log_path, runtime.python, resolver, sqs, session, endpoint)
            if spec.events_of("HttpApi") or spec.events_of("Api"):
                api_pool = pool

        if api_pool is None:
            raise SystemExit("template.yaml declares no function with an HttpApi event")
        # from here on every EMF document the functions write is counted
        self.metrics = self._metrics(sqs, resolver, logs_dir, list(specs), embedded=not args.endpoint)
        self.summary.append(
            ("metrics", f"Prometheus http://{args.host}:{args.port}/metrics (the functions' EMF, queue depths)")
        )
        # Warm one environment of every function, in parallel, so the first requests are fast.
        await asyncio.gather(*(p.prewarm(1) for p in self.pools.values()))
        for source in self.sources:
            self.tasks.append(asyncio.create_task(source.run()))
        if stream_base:
            ok = await asyncio.to_thread(wait_for_port, "127.0.0.1", int(stream_port or 0), 30)
            if not ok:
                raise SystemExit(f"the stream function did not start (see {logs_dir}/{stream_names[0]}.log)")
        self.ready_seconds = time.perf_counter() - t0
        self.endpoint = endpoint
        self.state = {
            "url": f"http://{args.host}:{args.port}",
            "endpoint": endpoint,
            "stream": stream_base,
            "pid": os.getpid(),
            "physical": resolver.physical,
            "api_key": api_key,
            "signing_secret": SECRET_VALUES.get("SigningSecret", ""),
            "iam": {"enforced": self.iam, "policy": str(policy_path), "calls_log": str(calls_log)}
            if self.iam
            else {"enforced": False, "by": endpoint},
            "python": runtime.python,
            "logs": {name: str(logs_dir / f"{name}.log") for name in specs},
            "xray": {"address": xray_address, "segments": str(self.xray.out)},
            "environments": envs,
            "exceptions": [dataclasses.asdict(e) for e in self.exceptions],
        }
        caps = [specs[n].reserved_concurrency for n in stream_names if specs[n].reserved_concurrency is not None]
        stream_limit = int(resolver.resolve(caps[0])) if caps else 100
        return Front(api_pool, stream_base, stream_limit=stream_limit, metrics=self.metrics.scrape)

    def _start_endpoint(self, policy_path: Path, calls_log: Path) -> str:
        """The AWS endpoint's URL: the embedded one started here (which checks every function's
        calls against its role in the template), or AWS_ENDPOINT_URL's."""
        args = self.args
        endpoint: str = args.endpoint
        self.iam = not endpoint
        if endpoint:
            self.summary.append(("AWS endpoint", f"{endpoint} (AWS_ENDPOINT_URL)"))
            self.summary.append(
                ("IAM", f"enforced by {endpoint}, not by the runner (LocalStack: ENFORCE_IAM=1); functions share a key")
            )
            return endpoint
        policy_path.parent.mkdir(parents=True, exist_ok=True)
        policy_path.unlink(missing_ok=True)
        calls_log.write_text("")
        aws_state = Path(args.aws_state_dir)
        if args.fresh:
            fresh(aws_state)
        self.moto = start_moto(args.moto_port, policy_path, aws_state, args.snapshot_every)
        endpoint = f"http://127.0.0.1:{args.moto_port}"
        self.summary.append(("AWS endpoint", f"{endpoint} (embedded moto server)"))
        self.summary.append(
            (
                "AWS data",
                f"kept in {aws_state}/ (saved every {args.snapshot_every:g} s and on stop; --fresh starts empty)",
            )
        )
        self.summary.append(("IAM", f"each function's calls checked against its role in template.yaml: {calls_log}"))
        return endpoint

    async def _provision(self, session: Any, endpoint: str, region: str, template: Any) -> tuple[Resolver, str]:
        """The template's tables, queues and secrets (created or found) and the dev API key."""
        assembly = await asyncio.to_thread(
            assemble,
            session,
            endpoint,
            prefix=self.args.prefix,
            region=region,
            secret_values=SECRET_VALUES,
            template=template,
        )
        resolver = assembly.resolver
        by_kind: dict[str, list[str]] = {"tables": [], "queues": [], "secrets": []}
        for logical, attrs in resolver.physical.items():
            kind = "queues" if "QueueUrl" in attrs else "secrets" if ":secretsmanager:" in attrs["Arn"] else "tables"
            by_kind[kind].append(f"{logical} ({attrs['Ref']})" if kind == "tables" else logical)
        for kind, names in by_kind.items():
            if names:
                self.summary.append((kind, ", ".join(names)))

        api_key = os.environ.get("LOCAL_DEV_API_KEY", DEV_API_KEY)
        if "ApiKeysTable" in resolver.physical:
            await asyncio.to_thread(assembly.seed_key, session, endpoint, "dev", "local development key", api_key)
            self.summary.append(("API key", f"{api_key}  (owner 'dev'; send as X-Api-Key)"))
        return resolver, api_key

    async def _start_stream(
        self, name: str, spec: FunctionSpec, env: dict[str, str], log_path: Path, port: int, resolver: Resolver
    ) -> str:
        """The stream function as Lambda Web Adapter runs it: its start script (uvicorn)."""
        script = FUNCTIONS_DIR / spec.handler
        with log_path.open("ab") as out:
            self.stream_proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                str(script),
                env=env,
                cwd=str(FUNCTIONS_DIR),
                stdout=out,
                stderr=out,
                preexec_fn=die_with_parent,
                start_new_session=True,  # Ctrl-C stops the runner, which stops it
            )
        stream_base = f"http://127.0.0.1:{port}"
        limit = (
            f"; at most {resolver.resolve(spec.reserved_concurrency)} streams at once (reserved concurrency)"
            if spec.reserved_concurrency is not None
            else ""
        )
        self.summary.append(
            (name, f"Lambda Web Adapter style: {spec.handler} -> uvicorn on {stream_base} (response streaming)" + limit)
        )
        return stream_base

    def _start_pool(
        self,
        name: str,
        spec: FunctionSpec,
        env: dict[str, str],
        log_path: Path,
        python: str,
        resolver: Resolver,
        sqs: Any,
        session: Any,
        endpoint: str,
    ) -> FunctionPool:
        """A function's environments, with its SQS event source mappings and schedules."""
        args = self.args
        is_api = bool(spec.events_of("HttpApi") or spec.events_of("Api"))
        pool = FunctionPool(
            name,
            spec.handler,
            env,
            timeout=spec.timeout,
            memory=spec.memory,
            size=pool_size(spec, resolver, args.max_concurrency),
            cwd=str(FUNCTIONS_DIR),
            python=python,
            log_path=str(log_path),
            trace=self.xray.new_trace if self.xray is not None and spec.tracing == "Active" else None,
            payload_limit=SYNC_PAYLOAD_LIMIT if is_api else None,
        )
        self.pools[name] = pool
        roles = [f"HTTP front http://{args.host}:{args.port}"] if is_api else []
        arn_to_logical = {v["Arn"]: k for k, v in resolver.physical.items() if "Arn" in v}
        for event_name, props in spec.events_of("SQS").items():
            arn = resolver.resolve(props["Queue"])
            logical = arn_to_logical[arn]
            concurrency = min(
                int(resolver.resolve((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 2))),
                pool.size,
            )
            source = SqsEventSource(
                f"{name}/{event_name}",
                self._esm_client(name, sqs, session, endpoint),
                resolver.physical[logical]["QueueUrl"],
                arn,
                pool,
                batch_size=int(resolver.resolve(props.get("BatchSize", 10))),
                batching_window=float(resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
                concurrency=concurrency,
                report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                region=os.environ["AWS_REGION"],
            )
            self.sources.append(source)
            window = f", window {source.batching_window:g} s" if source.batching_window else ""
            roles.append(f"SQS {logical} (batch {source.batch_size}{window}, concurrency {concurrency})")
        for props in {**spec.events_of("ScheduleV2"), **spec.events_of("Schedule")}.values():
            expr = props.get("ScheduleExpression") or props.get("Schedule")
            roles.append(f"schedule {expr} -> every {args.reconcile_every:g} s locally")
            self.tasks.append(asyncio.create_task(self._schedule(pool, args.reconcile_every, name)))
        reserved = f", reserved concurrency {pool.size}" if spec.reserved_concurrency is not None else ""
        self.summary.append((name, f"{spec.handler} x{pool.size}{reserved}: " + "; ".join(roles)))
        return pool

    @staticmethod
    def _metrics(sqs: Any, resolver: Resolver, logs_dir: Path, names: list[str], *, embedded: bool) -> Any:
        """/metrics: the EMF documents of every function's log and the queues' depths, read
        with the runner's own key (not through a function's role)."""
        from taskrunner.adapters.prometheus_queues import QueueDepths

        from .metrics import RunnerMetrics, embedded_oldest_ages

        queues = {logical: attrs["QueueUrl"] for logical, attrs in resolver.physical.items() if "QueueUrl" in attrs}
        endpoint = sqs.meta.endpoint_url
        depths = QueueDepths(sqs, queues, embedded_oldest_ages(endpoint) if embedded else None)
        return RunnerMetrics({name: logs_dir / f"{name}.log" for name in names}, depths)

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
        if self.stream_proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stream_proc.wait(), 5)
        if self.xray is not None:
            self.xray.close()
        if self.moto and self.moto.poll() is None:
            # last: every function has stopped; it saves its data, then exits
            self.moto.terminate()
            try:
                await asyncio.to_thread(self.moto.wait, 20)
            except subprocess.TimeoutExpired:
                log.warning("the embedded AWS endpoint did not stop within 20 s; killed")
                self.moto.kill()
