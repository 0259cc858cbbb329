"""Outbound HTTP that cannot be aimed inside: the egress guard and a client that uses it.

A URL is allowed when it is http(s) and every address its host resolves to is public
(not loopback, private, link-local, multicast, reserved or a cloud metadata address),
unless the host or address is on the allow-list. The client connects to the very address
it checked (no second DNS lookup, so DNS rebinding cannot swap it) and checks every
redirect hop again.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

from ..domain.errors import EgressDeniedError, NameResolutionError

Resolver = Callable[[str, int], Sequence[str]]
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclasses.dataclass(frozen=True)
class EgressPolicy:
    allow_loopback: bool = False
    allow_list: tuple[str, ...] = ()

    def _allowed_by_list(self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
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
        if ip.is_loopback:
            if self.allow_loopback:
                return
            raise EgressDeniedError(f"refused: {host} resolves to loopback address {ip}")
        if ip in METADATA_ADDRESSES:
            raise EgressDeniedError(f"refused: {host} resolves to a cloud metadata address ({ip})")
        for label, flag in (
            ("link-local", ip.is_link_local),
            ("private", ip.is_private),
            ("multicast", ip.is_multicast),
            ("reserved", ip.is_reserved),
            ("unspecified", ip.is_unspecified),
        ):
            if flag:
                raise EgressDeniedError(f"refused: {host} resolves to {label} address {ip}")

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


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        assert self._context is not None  # type: ignore[attr-defined]
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class GuardedHttpClient:
    """HttpClient that enforces an EgressPolicy on every hop."""

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
        for _ in range(self._max_redirects + 1):
            scheme, host, port, address = self._policy.resolve_checked(url, self._resolver)
            conn_cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
            conn = conn_cls(address, host, port, timeout)
            try:
                parts = urlsplit(url)
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                send_headers = {"User-Agent": "taskrunner/1.0", **(headers or {})}
                conn.request(method, path, body=body, headers=send_headers)
                raw = conn.getresponse()
                data = raw.read(self._max_body + 1)
                response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
            finally:
                conn.close()
            if response.status in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            return response
        raise EgressDeniedError(f"refused: more than {self._max_redirects} redirects")
