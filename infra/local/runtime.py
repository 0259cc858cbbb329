"""How each function runs locally: the interpreter and its bundle, the environment Lambda
would give it, and how many environments it gets."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .bundles import ensure_bundle, function_kinds, runtime_python
from .exceptions import LocalException, applied
from .template import ROOT, FunctionSpec, Resolver

FUNCTIONS_DIR = ROOT / "functions"


@dataclasses.dataclass
class Runtime:
    """How the functions' processes run: the interpreter and each function's import path."""

    python: str
    paths: dict[str, list[str]]  # function -> directories before functions/ on PYTHONPATH
    note: str


def prepare_runtime(names: list[str], quick: bool, cache: Path) -> Runtime:
    """python3.13 with each function's own bundle (as sam build packages it); the dev
    virtualenv when asked (--quick-env) or when python3.13 is missing."""
    python = None if quick else runtime_python()
    if python is None:
        reason = "--quick-env" if quick else "python3.13 NOT FOUND: functions do not run as on Lambda"
        return Runtime(sys.executable, {n: [] for n in names}, f"{reason}; dev virtualenv {sys.executable}")
    kinds = function_kinds()
    missing = [n for n in names if n not in kinds]
    if missing:
        raise SystemExit(f"functions/Makefile has no build rule for {', '.join(missing)}")
    started = time.perf_counter()
    needed = sorted({kinds[n] for n in names})
    with ThreadPoolExecutor(len(needed)) as builders:
        results = dict(zip(needed, builders.map(lambda kind: ensure_bundle(kind, python, cache), needed), strict=True))
    dirs = {kind: path for kind, (path, _) in results.items()}
    built = [kind for kind, (_, new) in results.items() if new]
    seconds = time.perf_counter() - started
    state = f"built {', '.join(built)} in {seconds:.1f} s" if built else f"cached, checked in {seconds:.2f} s"
    rel = cache.relative_to(ROOT) if cache.is_relative_to(ROOT) else cache
    return Runtime(
        python,
        {n: [str(dirs[kinds[n]])] for n in names},
        f"{python}; bundles {', '.join(sorted(dirs))} in {rel}/ ({state})",
    )


def runtime_variables(spec: FunctionSpec, region: str, runtime: Runtime) -> dict[str, str]:
    """What Lambda's runtime sets in every execution environment by itself."""
    name = spec.logical_id
    env = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "LAMBDA_TASK_ROOT": str(FUNCTIONS_DIR),
        "_HANDLER": spec.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": os.pathsep.join([os.path.dirname(runtime.python), "/usr/local/bin", "/usr/bin", "/bin"]),
        # the bundle, then the source (so edits apply without a rebuild)
        "PYTHONPATH": os.pathsep.join([*runtime.paths[name], str(FUNCTIONS_DIR)]),
    }
    if spec.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    return env


def function_environment(
    spec: FunctionSpec, resolver: Resolver, region: str, runtime: Runtime, exceptions: list[LocalException]
) -> dict[str, str]:
    """Lambda's own variables + template.yaml's (Globals and the function's, resolved) + the
    declared local exceptions that apply to this function. Nothing else."""
    env = runtime_variables(spec, region, runtime)
    env.update({k: str(resolver.resolve(v)) for k, v in spec.environment.items()})
    env.update(applied(exceptions, spec.logical_id))
    return env


def pool_size(spec: FunctionSpec, resolver: Resolver, max_concurrency: int) -> int:
    """Concurrent environments: the API up to --max-concurrency, an SQS consumer up to its
    mappings' MaximumConcurrency, a scheduled function one; never above the function's
    reserved concurrency (ReservedConcurrentExecutions), as on Lambda."""
    size = max_concurrency if spec.events_of("HttpApi") or spec.events_of("Api") else 1
    sqs_events = spec.events_of("SQS")
    if sqs_events:
        size = min(
            max_concurrency,
            sum(
                int(resolver.resolve((e.get("ScalingConfig") or {}).get("MaximumConcurrency", 2)))
                for e in sqs_events.values()
            ),
        )
    if spec.reserved_concurrency is not None:
        size = min(size, int(resolver.resolve(spec.reserved_concurrency)))
    return max(1, size)


def is_web_adapter(spec: FunctionSpec) -> bool:
    env = spec.environment
    return "AWS_LWA_INVOKE_MODE" in env or env.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap"
