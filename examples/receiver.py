"""A callback receiver that verifies Standard Webhooks signatures (stdlib only).

    WEBHOOK_SECRET=whsec_... python examples/receiver.py 9000

Get your secret with `curl -H "X-Api-Key: $KEY" http://127.0.0.1:8000/api/callback-secret`.
Every callback is printed with whether its signature verified; a bad signature gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """Standard Webhooks: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    h = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, timestamp = h["webhook-id"], int(h["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:  # refuse replays of old messages
        return False
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    return any(hmac.compare_digest(expected, sig) for sig in h.get("webhook-signature", "").split())


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ok = verify(os.environ["WEBHOOK_SECRET"], dict(self.headers), body)
        print(
            json.dumps(
                {"signature_ok": ok, "webhook-id": self.headers.get("webhook-id"), "body": json.loads(body or b"null")}
            ),
            flush=True,
        )
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/hook", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
