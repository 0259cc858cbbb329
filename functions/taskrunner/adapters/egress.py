"""Outbound HTTP that cannot be aimed inside: the egress guard and a client that uses it.

A URL is allowed when it is http(s) and every address its host resolves to is public:
not in any range of the IANA IPv4 and IPv6 Special-Purpose Address Registries (``SPECIAL_PURPOSE``
in egress_ranges.py: loopback, private, shared/CGNAT, link-local, documentation,
benchmarking, reserved, multicast, ...) and not a cloud metadata address, unless the host
or address is on the allow-list. An IPv6 address that carries an IPv4 address (IPv4-mapped,
IPv4-compatible, 6to4, NAT64, Teredo) has that IPv4 address checked too. The client
connects to the very address it checked (no second DNS lookup, so DNS rebinding cannot
swap it), checks every redirect hop again, and holds every request to a total deadline.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

from ..domain.errors import EgressDeniedError, NameResolutionError
from .egress_ranges import (
    DECIDED_BY_EMBEDDED,
    METADATA_ADDRESSES,
    SPECIAL_PURPOSE,
    IPAddress,
    embedded_ipv4,
    special_purpose,
)

Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclasses.dataclass(frozen=True)
class EgressPolicy:
    allow_loopback: bool = False
    allow_list: tuple[str, ...] = ()

    def _allowed_by_list(self, host: str, ip: IPAddress) -> bool:
        for entry in self.allow_list:
            if entry.lower() == host.lower():
                return True
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def check_address(self, host: str, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if self._allowed_by_list(host, ip):
            return
        if ip.is_loopback and self.allow_loopback:
            return
        if ip in METADATA_ADDRESSES:
            raise EgressDeniedError(f"refused: {host} resolves to a cloud metadata address ({ip})")
        for how, inner in embedded_ipv4(ip):
            if inner in METADATA_ADDRESSES or special_purpose(inner) is not None:
                reason = "a cloud metadata address" if inner in METADATA_ADDRESSES else special_purpose(inner)
                raise EgressDeniedError(f"refused: {host} resolves to {ip}, which {how} {inner} ({reason})")
        if any(ip in network for network in DECIDED_BY_EMBEDDED):
            return
        name = special_purpose(ip)
        if name is not None:
            raise EgressDeniedError(f"refused: {host} resolves to {name} address {ip}")

    def check_url_syntax(self, url: str) -> tuple[str, str, int]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise EgressDeniedError(f"refused: only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise EgressDeniedError("refused: the URL has no host")
        if parts.username or parts.password:
            raise EgressDeniedError("refused: credentials in URLs are not allowed")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EgressDeniedError("refused: the URL's port is not valid") from None
        return parts.scheme, parts.hostname, port

    def resolve_checked(self, url: str, resolver: Resolver = system_resolver) -> tuple[str, str, int, str]:
        """(scheme, host, port, address to connect to) or EgressDeniedError."""
        scheme, host, port = self.check_url_syntax(url)
        try:
            literal = ipaddress.ip_address(host)
            addresses: Sequence[str] = [str(literal)]
        except ValueError:
            try:
                addresses = resolver(host, port)
            except OSError as exc:
                raise NameResolutionError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise EgressDeniedError(f"refused: {host} has no address")
        for address in addresses:  # every address must pass: a mixed answer is an attack sign
            self.check_address(host, address)
        return scheme, host, port, addresses[0]

    def check_literal_url(self, url: str) -> None:
        """Syntax, and the address when the host is a literal IP address (no DNS lookup)."""
        _, host, _ = self.check_url_syntax(url)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return  # a name: checked when the task runs, on every hop
        self.check_address(host, host)

    def check_url(self, url: str, resolver: Resolver = system_resolver) -> None:
        """Submit-time check: syntax always; addresses when the name resolves now."""
        self.check_url_syntax(url)
        try:
            self.resolve_checked(url, resolver)
        except NameResolutionError:
            return  # may resolve later; checked again at delivery


@dataclasses.dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


# Headers that carry a credential or a signature: never sent to another origin.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "webhook-id", "webhook-timestamp", "webhook-signature"}
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class DeadlineExceededError(TimeoutError):
    """The request did not finish (connect, headers and body) within its total deadline."""


class _Deadline:
    """A total time budget for one request. Every socket operation gets the time left as its
    timeout, and a watchdog shuts the socket down when the budget is spent, so a receiver
    that drips one byte at a time cannot hold the request past the deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0 or self.expired:
            raise self.error()
        return left

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self._end - 0.05

    def error(self) -> DeadlineExceededError:
        return DeadlineExceededError(f"no complete answer within the {self.seconds:g} s deadline")

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise self.error()
            self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                try:  # the plain socket's shutdown, also for a TLS socket: wakes a blocked read
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def cancel(self) -> None:
        self._timer.cancel()


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.remaining(), context=ssl.create_default_context())
        self._address = address
        self._deadline = deadline

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self._deadline.remaining())
        assert self._context is not None  # type: ignore[attr-defined]
        tls = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host, do_handshake_on_connect=False
        )
        self.sock = tls
        self._deadline.watch(tls)  # the handshake too is held to the deadline
        tls.settimeout(self._deadline.remaining())
        tls.do_handshake()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.remaining())
        self._address = address
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self._deadline.remaining())
        self._deadline.watch(self.sock)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


class GuardedHttpClient:
    """HttpClient that enforces an EgressPolicy on every hop and a total deadline
    (``timeout``: connect, headers and body, all hops together) on every request.

    ``max_redirects=0`` follows no redirect: a 3xx answer is returned as it is. Otherwise a
    redirect to another origin (scheme, host, port) loses the credential headers."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        max_redirects: int = 5,
        max_body: int = 1_000_000,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._max_redirects = max_redirects
        self._max_body = max_body

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> Response:
        deadline = _Deadline(timeout)
        try:
            return self._request(method, url, dict(headers or {}), body, deadline)
        except OSError as exc:
            if deadline.passed() and not isinstance(exc, DeadlineExceededError):
                raise deadline.error() from None
            raise
        except http.client.HTTPException:
            if deadline.passed():
                raise deadline.error() from None
            raise
        finally:
            deadline.cancel()

    def _request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, deadline: _Deadline
    ) -> Response:
        for _ in range(self._max_redirects + 1):
            response = self._one(method, url, headers, body, deadline)
            if self._max_redirects == 0 or response.status not in REDIRECT_STATUSES:
                return response
            if "location" not in response.headers:
                return response
            target = urljoin(url, response.headers["location"])
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            url = target
        raise EgressDeniedError(f"refused: more than {self._max_redirects} redirects")

    def _one(self, method: str, url: str, headers: dict[str, str], body: bytes | None, deadline: _Deadline) -> Response:
        scheme, host, port, address = self._policy.resolve_checked(url, self._resolver)
        conn_cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        conn = conn_cls(address, host, port, deadline)
        try:
            parts = urlsplit(url)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request(method, path, body=body, headers={"User-Agent": "taskrunner/1.0", **headers})
            sock = conn.sock
            assert sock is not None
            sock.settimeout(deadline.remaining())
            raw = conn.getresponse()
            chunks: list[bytes] = []
            size = 0
            while size <= self._max_body:
                sock.settimeout(deadline.remaining())
                chunk = raw.read1(min(65536, self._max_body + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            deadline.remaining()  # a body cut short by the watchdog is a timeout, not an answer
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, b"".join(chunks))
        finally:
            conn.close()


# the ranges are egress_ranges.py's; these names stay importable from here
__all__ = [
    "SPECIAL_PURPOSE",
    "DeadlineExceededError",
    "EgressPolicy",
    "GuardedHttpClient",
    "Response",
    "embedded_ipv4",
    "special_purpose",
    "system_resolver",
]
