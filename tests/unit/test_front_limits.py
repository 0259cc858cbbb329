"""The local front's limits are answered, never silent: a stream over the stream function's
reserved concurrency gets 429 (as a throttled Function URL), a body that never arrives in
full gets 408."""

import asyncio
import time

from infra.local.front import Front
from infra.local.procs import free_port


async def _call(front, scope, receive):
    sent = []

    async def send(message):
        sent.append(message)

    await front(scope, receive, send)
    return sent


async def _started(front):
    queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.create_task(_call(front, {"type": "lifespan"}, queue.get))
    await asyncio.sleep(0.05)
    return queue, task


async def _stopped(queue, task):
    await queue.put({"type": "lifespan.shutdown"})
    await task


def _scope(method, path, headers):
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
    }


def test_a_stream_over_the_reserved_concurrency_is_answered_429():
    async def main():
        front = Front(api=None, stream_base=f"http://127.0.0.1:{free_port()}", stream_limit=2)
        queue, lifespan = await _started(front)

        async def never():
            await asyncio.sleep(3600)

        front.open_streams = 2  # two streams hold every environment
        sent = await _call(front, _scope("GET", "/api/tasks/t-1", {"accept": "text/event-stream"}), never)
        assert sent[0]["status"] == 429 and (b"retry-after", b"1") in sent[0]["headers"]
        front.open_streams = 1  # one free: it is served (here the stream function is down: 502) and released
        sent = await _call(front, _scope("GET", "/api/tasks/t-1", {"accept": "text/event-stream"}), never)
        assert sent[0]["status"] == 502 and front.open_streams == 1
        await _stopped(queue, lifespan)

    asyncio.run(main())


def test_a_body_shorter_than_its_content_length_is_answered_408():
    async def main():
        front = Front(api=None, stream_base=None, body_timeout=0.3)
        chunks = [{"type": "http.request", "body": b'{"name": "su', "more_body": True}]

        async def receive():
            if chunks:
                return chunks.pop()
            await asyncio.sleep(3600)  # the rest of the declared body never comes

        started = time.monotonic()
        headers = {"content-type": "application/json", "content-length": "200"}
        sent = await asyncio.wait_for(_call(front, _scope("POST", "/api/tasks", headers), receive), 5)
        assert sent[0]["status"] == 408 and time.monotonic() - started < 2

    asyncio.run(main())
