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
from pathlib import Path

from . import profiling
from .banner import announce
from .options import parse_args
from .stack import Stack

__all__ = ["amain", "main"]


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
    announce(stack, args.host, args.port)
    try:
        await serving
    finally:
        await stack.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, description=__doc__)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    for noisy in ("botocore", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if args.profile:
        os.environ["LOCAL_PROFILE_DIR"] = args.profile  # the embedded endpoint inherits it
        profiling.install()
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass
    finally:
        profiling.dump("runner")


if __name__ == "__main__":
    main()
