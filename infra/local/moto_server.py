"""The embedded AWS endpoint: moto's server, tuned for the local runner.

Same application as ``python -m moto.server``, with three changes that cut its CPU per
request (measured with py-spy under load, they were a third of it):
- HTTP/1.1 keep-alive, so clients reuse connections instead of a new connection and
  thread per request;
- no per-request access log;
- the service of DynamoDB and SQS requests taken from their X-Amz-Target header instead of
  matching every backend's URL patterns under a global lock;
- "now" as ``time.time()``: moto's SQS checks every message's visibility on every receive
  through a datetime round trip that cost more than the rest of the receive (same value);
- a direct copy of DynamoDB items: moto deep-copies the item twice per UpdateItem through
  the generic pickle protocol, which was most of an UpdateItem's cost;
- each UpdateExpression string parsed once, not twice per call, and its validation passes
  without ABCMeta's isinstance hook per node (infra/local/emulation.py);
- a Query on an index looks only at the items with its partition key value, instead of
  sorting the whole table first (infra/local/emulation.py);
- SQS long polls that sleep until a send or a visibility change instead of waking every
  second (same answers);
- DynamoDB Time to Live: expired items deleted every ``--ttl-sweep-every`` seconds (moto
  keeps them for ever; declared in exceptions.py).

With ``LOCAL_PROFILE_DIR`` set (the runner's ``--profile``) it writes its CPU profile there
when it stops (infra/local/profiling.py).

With ``--iam-policy FILE`` (the runner always passes it) every call signed with a function's
access key is checked against that function's role first (infra/local/iam/): a call the
template does not grant gets AWS's access denied answer and never reaches moto.

With ``--state-dir DIR`` the data of DynamoDB, SQS and Secrets Manager is kept in DIR across
restarts (infra/local/persistence.py): restored before serving, saved every
``--snapshot-every`` seconds when something changed and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Callable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, run_simple

from .emulation import (
    SWEEP_EVERY,
    Buckets,
    TtlSweeper,
    cached_update_expressions,
    faster_ast_traversal,
    narrowed_index_queries,
    sleeping_long_polls,
)

TARGET_PREFIXES = {"DynamoDB_": "dynamodb", "AmazonSQS.": "sqs"}


class Dispatcher(DomainDispatcherApplication):
    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._by_service: dict[str, Any] = {}

    def get_application(self, environ: dict[str, Any]) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        for prefix, service in TARGET_PREFIXES.items():
            if target.startswith(prefix):
                app = self._by_service.get(service)
                if app is None:
                    app = super().get_application(environ)
                    self._by_service[service] = app
                return app
        return super().get_application(environ)


class IamMiddleware:
    """Checks each call signed by a function's key against its role; the runner's own keys pass."""

    def __init__(self, app: Any, policy_path: str) -> None:
        from .iam import Enforcer, access_key_of

        self.app = app
        self.enforcer = Enforcer(policy_path)
        self._key_of = access_key_of

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        query = environ.get("QUERY_STRING", "")
        if self.enforcer.function_of(self._key_of(authorization)) is None and "X-Amz-Credential=" not in query:
            return self.app(environ, start_response)  # the runner's own (unrestricted) key
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        headers = {
            "authorization": authorization,
            "x-amz-target": environ.get("HTTP_X_AMZ_TARGET", ""),
            "content-type": environ.get("CONTENT_TYPE", ""),
        }
        _, denied = self.enforcer.check(headers, body, path=environ.get("PATH_INFO", "/"), query=query)
        if denied is None:
            return self.app(environ, start_response)
        start_response(denied.status, [*denied.headers, ("Content-Length", str(len(denied.body)))])
        return [denied.body]


class DynamoDbWrites:
    """Tells the index buckets (emulation.Buckets) of every DynamoDB call that may have written,
    once it is done: a query never keeps buckets built before a write it could see."""

    def __init__(self, app: Any, buckets: Any) -> None:
        from .persistence import READS

        self.app = app
        self.buckets = buckets
        self.reads = READS

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        try:
            return self.app(environ, start_response)
        finally:
            if target.startswith("DynamoDB") and target.rpartition(".")[2] not in self.reads:
                self.buckets.changed()


class OldestMessageAges:
    """``GET /_local/sqs/oldest-message-ages``: each queue's oldest message age in seconds, by
    queue name (the runner's /metrics; SQS itself tells it only through CloudWatch's
    ApproximateAgeOfOldestMessage). Every other request goes to ``app``."""

    def __init__(self, app: Any) -> None:
        from .metrics import OLDEST_AGES_PATH

        self.app = app
        self.path = OLDEST_AGES_PATH

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        body = json.dumps(oldest_message_ages()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def oldest_message_ages() -> dict[str, float]:
    import time

    from moto.sqs.models import sqs_backends

    now_ms = time.time() * 1000
    ages: dict[str, float] = {}
    for regions in list(sqs_backends.values()):
        for backend in list(regions.values()):
            for name, queue in list(backend.queues.items()):
                stamps = [getattr(m, "sent_timestamp", None) for m in list(queue._messages)]
                sent = [float(stamp) for stamp in stamps if stamp is not None]
                ages[name] = max(0.0, (now_ms - min(sent)) / 1000) if sent else 0.0
    return ages


class KeepAliveQuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _fast_clock() -> None:
    import time

    import moto.core.utils as core_utils
    import moto.sqs.models as sqs_models

    original = core_utils.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original(dt) * 1000.0

    for module in (core_utils, sqs_models):
        module.unix_time = unix_time  # type: ignore[attr-defined]
        module.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]


def _fast_item_copies() -> None:
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    def copy_value(self: Any, memo: dict[int, Any]) -> Any:
        new = DynamoType.__new__(DynamoType)
        new.__dict__.update(self.__dict__)
        if isinstance(self.value, list | dict | set):
            new.value = copy.deepcopy(self.value, memo)
        return new

    def copy_item(self: Any, memo: dict[int, Any]) -> Any:
        new: Any = Item.__new__(Item)
        new.__dict__.update(self.__dict__)
        new.hash_key = copy.deepcopy(self.hash_key, memo)
        new.range_key = copy.deepcopy(self.range_key, memo)
        attrs = LimitedSizeDict()
        dict.update(attrs, {key: copy.deepcopy(value, memo) for key, value in self.attrs.items()})
        new.attrs = attrs
        return new

    DynamoType.__deepcopy__ = copy_value  # type: ignore[method-assign]
    Item.__deepcopy__ = copy_item  # type: ignore[method-assign]


def _persistent(app: Any, state_dir: str, every: float) -> Any:
    """The data restored now, snapshots from now on, the last one on SIGTERM/SIGINT."""
    import os
    import signal
    import sys

    from . import profiling
    from .persistence import Persistence

    persistence = Persistence(app, state_dir, every)
    print(f"aws-state: {persistence.restore()}", file=sys.stderr, flush=True)

    def stop(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        code = 0
        try:
            profiling.dump("moto")
            persistence.final_save()
        except Exception as exc:
            print(f"aws-state: the last snapshot failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)  # waitress's threads may be mid-call: they must not answer after the snapshot

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    persistence.start()
    return persistence


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    parser.add_argument("--server", choices=("waitress", "werkzeug"), default="waitress")
    parser.add_argument(
        "--iam-policy",
        default="",
        help="policy file the runner writes (infra/local/iam/): enforce each function's role",
    )
    parser.add_argument("--state-dir", default="", help="keep the data in this directory across restarts")
    parser.add_argument("--snapshot-every", type=float, default=2.0, help="seconds between snapshots (with changes)")
    parser.add_argument(
        "--ttl-sweep-every", type=float, default=SWEEP_EVERY, help="seconds between DynamoDB TTL sweeps (0: none)"
    )
    args = parser.parse_args()
    from . import profiling

    if profiling.install() and not args.state_dir:
        import signal
        import sys

        signal.signal(signal.SIGTERM, lambda *_: (profiling.dump("moto"), sys.exit(0)))
    _fast_clock()
    _fast_item_copies()
    sleeping_long_polls()
    cached_update_expressions()
    faster_ast_traversal()
    buckets = Buckets()
    narrowed_index_queries(buckets)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app: Any = DynamoDbWrites(Dispatcher(), buckets)
    persistence = _persistent(app, args.state_dir, args.snapshot_every) if args.state_dir else None
    if persistence is not None:
        app = persistence

    def swept() -> None:
        if persistence is not None:
            persistence.dirty = True
        buckets.changed()

    sweeper = TtlSweeper(
        args.ttl_sweep_every, guard=persistence.lock.shared if persistence is not None else None, changed=swept
    )
    if args.ttl_sweep_every > 0:
        sweeper.start()
    if args.iam_policy:
        app = IamMiddleware(app, args.iam_policy)
    app = OldestMessageAges(app)
    if args.server == "werkzeug":
        run_simple(args.host, args.port, app, threaded=True, request_handler=KeepAliveQuietHandler)
        return
    from waitress import serve

    logging.getLogger("waitress").setLevel(logging.ERROR)
    # long polls hold a thread each: size the pool for every poller of the runner and more
    serve(
        app,
        host=args.host,
        port=args.port,
        threads=96,
        connection_limit=1000,
        channel_timeout=120,
        ident="moto",
    )


if __name__ == "__main__":
    main()
