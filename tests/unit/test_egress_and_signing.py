import base64
import hashlib
import hmac
import http.server
import threading

import pytest
from taskrunner.adapters.egress import EgressPolicy, GuardedHttpClient
from taskrunner.adapters.webhook_sender import WebhookSender, sign, verify
from taskrunner.domain.errors import EgressDeniedError

from tests.support.http_server import LoopbackServer

DENY = EgressPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http://user:pw@example.com/",
    ],
)
def test_inside_addresses_and_other_schemes_are_refused(url):
    with pytest.raises(EgressDeniedError):
        DENY.resolve_checked(
            url, resolver=lambda host, port: ["127.0.0.1"] if host == "localhost" else ["93.184.216.34"]
        )


def test_public_address_passes_and_rebinding_mixed_answer_is_refused():
    assert (
        DENY.resolve_checked("https://example.com/hook", resolver=lambda h, p: ["93.184.216.34"])[3] == "93.184.216.34"
    )
    with pytest.raises(EgressDeniedError):
        DENY.resolve_checked("https://evil.example/", resolver=lambda h, p: ["93.184.216.34", "10.0.0.5"])


def test_loopback_allowed_by_setting_and_allow_list():
    assert EgressPolicy(allow_loopback=True).resolve_checked("http://127.0.0.1:9/x")[3] == "127.0.0.1"
    assert EgressPolicy(allow_list=("10.0.0.0/8",)).resolve_checked("http://10.2.3.4/")[3] == "10.2.3.4"
    with pytest.raises(EgressDeniedError):
        EgressPolicy(allow_loopback=True).resolve_checked("http://169.254.169.254/")


def test_redirect_to_inside_is_refused():
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = GuardedHttpClient(EgressPolicy(allow_loopback=True))
        with pytest.raises(EgressDeniedError, match="metadata"):
            client.request("GET", f"http://127.0.0.1:{server.server_address[1]}/start")
    finally:
        server.shutdown()
        server.server_close()


def test_signature_is_standard_webhooks_hmac():
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    body = b'{"task_id":"t"}'
    expected = base64.b64encode(
        hmac.new(b"0123456789abcdef", b"msg_1.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert sign(secret, "msg_1", 1700000000, body) == "v1," + expected
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1," + expected}
    assert verify(secret, headers, body, now=1700000010)
    assert not verify(secret, headers, body + b" ", now=1700000010)
    assert not verify(secret, headers, body, now=1700009999)  # too old: replay refused
    assert not verify("whsec_" + base64.b64encode(b"other").decode(), headers, body, now=1700000010)


def test_sender_posts_signed_json():
    from taskrunner.adapters.memory import RecordingHttpClient

    http_client = RecordingHttpClient([204])
    sender = WebhookSender(http_client, lambda owner: f"secret-of-{owner}", clock=lambda: 1700000000)
    assert sender.send("https://example.com/h", b"{}", message_id="msg_t", timeout=5, owner="alice") == 204
    sent = http_client.requests[0]
    assert sent["method"] == "POST" and sent["headers"]["Content-Type"] == "application/json"
    assert verify("secret-of-alice", sent["headers"], b"{}", now=1700000000)
    assert not verify("secret-of-bob", sent["headers"], b"{}", now=1700000000)


def _deliver_with_resolver(resolver):
    """A finished task's callback through the real guarded client, with ``resolver`` as DNS;
    nothing connects anywhere: both outcomes are decided before a connection."""
    from taskrunner.domain.models import CallbackState, TaskStatus
    from taskrunner.domain.service import CallbackService

    from tests.support.fakes import make_fakes
    from tests.unit.factories import a_task

    f = make_fakes()
    task = a_task(status=TaskStatus.COMPLETED, callback=CallbackState(url="https://hooks.example.com/x"))
    f.repo.create(task)
    sender = WebhookSender(GuardedHttpClient(DENY, resolver=resolver), lambda owner: "whsec_dGVzdA==")
    outcome = CallbackService(f.repo, sender, clock=f.clock, rand=lambda: 0.5).deliver(task.task_id)
    return outcome, f.repo.tasks[task.task_id].callback


def test_dns_failure_at_delivery_is_retried_not_a_refusal():
    def no_dns(host, port):
        raise OSError("Temporary failure in name resolution")

    outcome, callback = _deliver_with_resolver(no_dns)
    assert not outcome.done and outcome.retry_after_seconds > 0
    assert callback.status.value == "RETRYING" and "cannot resolve" in callback.last_error


def test_callback_to_an_inside_address_is_refused_for_good():
    outcome, callback = _deliver_with_resolver(lambda host, port: ["10.0.0.5"])
    assert outcome.done and callback.status.value == "FAILED" and callback.last_error.startswith("refused")


def test_submit_time_check_lets_an_unresolvable_name_through_for_later():
    def no_dns(host, port):
        raise OSError("Temporary failure in name resolution")

    DENY.check_url("https://not-yet.example.com/hook", resolver=no_dns)  # no error: checked at delivery


class _Server(LoopbackServer):
    """A scripted HTTP server on 127.0.0.1: ``handler(request_handler)`` answers each request;
    every request's path and headers are recorded."""

    def __init__(self, handler):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                outer.requests[-1]["body"] = body
                handler(self)

            do_GET = do_POST = _any

            def log_message(self, *a):
                pass

        super().__init__(Handler)


def _answer(status, body=b"ok", headers=()):
    def handler(h):
        h.send_response(status)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handler


def _dripping(h):
    """Headers at once, then one body byte per second: no single read ever times out."""
    import time as _time

    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    h.wfile.flush()
    try:
        for _ in range(100):
            h.wfile.write(b"x")
            h.wfile.flush()
            _time.sleep(1)
    except OSError:
        pass


def test_a_dripping_receiver_is_cut_off_at_the_total_deadline():
    import time

    from taskrunner.adapters.egress import DeadlineExceededError

    with _Server(_dripping) as server:
        client = GuardedHttpClient(EgressPolicy(allow_loopback=True))
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="2 s deadline"):
            client.request("POST", server.url + "/hook", body=b"{}", timeout=2)
        assert time.monotonic() - started < 2.8


def test_a_dripping_status_line_is_cut_off_too():
    import time

    def drip_headers(h):
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    with _Server(drip_headers) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            GuardedHttpClient(EgressPolicy(allow_loopback=True)).request("GET", server.url, timeout=1.5)
        assert time.monotonic() - started < 2.3


def test_callback_redirect_is_a_failed_attempt_and_nothing_follows_it():
    from taskrunner.domain.models import CallbackState, TaskStatus
    from taskrunner.domain.service import CallbackService

    from tests.support.fakes import make_fakes
    from tests.unit.factories import a_task

    with _Server(_answer(200)) as elsewhere:
        with _Server(_answer(307, headers=[("Location", elsewhere.url + "/stolen")])) as receiver:
            f = make_fakes()
            task = a_task(status=TaskStatus.COMPLETED, callback=CallbackState(url=receiver.url + "/hook"))
            f.repo.create(task)
            sender = WebhookSender(
                GuardedHttpClient(EgressPolicy(allow_loopback=True), max_redirects=0), lambda owner: "whsec_dGVzdA=="
            )
            outcome = CallbackService(f.repo, sender, clock=f.clock, rand=lambda: 0.5).deliver(task.task_id)
            callback = f.repo.tasks[task.task_id].callback
            assert len(receiver.requests) == 1 and receiver.requests[0]["method"] == "POST"
            assert elsewhere.requests == []  # no header and no body went to the redirect target
            assert not outcome.done and callback.status.value == "RETRYING"
            assert "HTTP 307" in callback.last_error and elsewhere.url + "/stolen" in callback.last_error


def test_bootstrap_gives_callbacks_a_client_that_follows_no_redirect():
    import inspect

    from taskrunner import bootstrap

    source = inspect.getsource(bootstrap.build_services)
    assert "WebhookSender(callback_http" in source and "GuardedHttpClient(egress, max_redirects=0)" in source


def test_cross_origin_redirect_drops_credentials_same_origin_keeps_them():
    with _Server(_answer(200)) as other:
        # 127.0.0.1 and localhost on another port are other origins
        def hop(h):
            if h.path == "/start":
                h.send_response(302)
                h.send_header("Location", "/same")
                h.send_header("Content-Length", "0")
                h.end_headers()
            elif h.path == "/same":
                h.send_response(307)
                h.send_header("Location", other.url + "/away")
                h.send_header("Content-Length", "0")
                h.end_headers()

        with _Server(hop) as first:
            client = GuardedHttpClient(EgressPolicy(allow_loopback=True))
            secret = {"Authorization": "Bearer s3cret", "Cookie": "sid=1", "X-Trace": "keep"}
            response = client.request("GET", first.url + "/start", headers=secret, timeout=5)
            assert response.status == 200
            same = first.requests[1]["headers"]
            assert same.get("Authorization") == "Bearer s3cret" and same.get("Cookie") == "sid=1"
            away = other.requests[0]["headers"]
            assert "Authorization" not in away and "Cookie" not in away and away.get("X-Trace") == "keep"
