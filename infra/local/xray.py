"""A stand-in for the X-Ray daemon Lambda runs next to each function: a UDP listener on
127.0.0.1 that receives the SDK's segment documents, counts them per function and writes
each (sub)segment as one JSON line, so tests and developers can see what AWS would get.

Lambda gives every invocation a trace header (``_X_AMZN_TRACE_ID``); the runner makes one per
invocation with ``new_trace`` and so knows which function each trace belongs to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("taskrunner.local")
HEADER = b'{"format":"json","version":1}'


def trace_header() -> tuple[str, str]:
    """(the header Lambda would set, its trace id)"""
    root = f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"
    return f"Root={root};Parent={os.urandom(8).hex()};Sampled=1", root


class XRayDaemon(asyncio.DatagramProtocol):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.address = ""
        self._functions: dict[str, str] = {}  # trace id -> function
        self.documents: Counter[str] = Counter()
        self.segments: Counter[str] = Counter()
        self.rejected = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._file: Any = None

    async def start(self) -> str:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.out.open("w", buffering=1, encoding="utf-8")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        self.address = f"{host}:{port}"
        return self.address

    def new_trace(self, function: str) -> str:
        header, root = trace_header()
        self._functions[root] = function
        return header

    def datagram_received(self, data: bytes, addr: Any) -> None:
        head, _, body = data.partition(b"\n")
        try:
            if json.loads(head) != json.loads(HEADER):
                raise ValueError(head)
            document = json.loads(body)
        except ValueError:
            self.rejected += 1
            log.warning("X-Ray: not a segment document from %s: %r", addr, data[:80])
            return
        function = self._functions.get(document.get("trace_id", ""), "unknown")
        self.documents[function] += 1
        for entity, depth in _walk(document, 0):
            self.segments[function] += 1
            aws = entity.get("aws") or {}
            record = {
                "function": function,
                "trace_id": entity.get("trace_id", document.get("trace_id")),
                "id": entity.get("id"),
                "parent_id": entity.get("parent_id"),
                "type": entity.get("type", "segment"),
                "name": entity.get("name"),
                "namespace": entity.get("namespace"),
                "operation": aws.get("operation"),
                "depth": depth,
                "error": bool(entity.get("error") or entity.get("fault")),
            }
            if self._file is not None:
                self._file.write(json.dumps(record) + "\n")

    def summary(self) -> dict[str, int]:
        return dict(self.segments)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._file is not None:
            self._file.close()


def _walk(entity: dict[str, Any], depth: int) -> Any:
    yield entity, depth
    for child in entity.get("subsegments") or []:
        yield from _walk(child, depth + 1)


def read_segments(path: Path) -> list[dict[str, Any]]:
    """The records written so far (for tests)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
