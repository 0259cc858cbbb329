"""The addresses outbound HTTP must not reach: the IANA IPv4 and IPv6 Special-Purpose Address
Registries (``SPECIAL_PURPOSE``), the cloud metadata addresses, and the IPv4 address an IPv6
address carries (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo). egress.py applies them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("fd00:ec2::254"),  # AWS (IPv6)
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("169.254.170.2"),  # ECS task metadata / credentials
    }
)

# The IANA Special-Purpose Address Registries (iana-ipv4-special-registry and
# iana-ipv6-special-registry), plus multicast, the IPv4 "reserved for future use" block and
# the IPv6 site-local block. None of them is a public destination on the Internet; the
# ranges that embed an IPv4 address are also unwrapped and the IPv4 address checked (below).
SPECIAL_PURPOSE: tuple[tuple[str, str], ...] = (
    # IPv4
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private-use"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private-use"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private-use"),
    ("192.175.48.0/24", "direct delegation AS112 service"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
    # IPv6
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
    ("64:ff9b::/96", "NAT64 (IPv4-IPv6 translation)"),
    ("64:ff9b:1::/48", "NAT64 (local-use IPv4/IPv6 translation)"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("2001:10::/28", "deprecated ORCHID"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local unicast"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
# Most specific first, so an address is refused under its narrowest name.
_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    sorted(
        ((ipaddress.ip_network(net), name) for net, name in SPECIAL_PURPOSE),
        key=lambda pair: -pair[0].prefixlen,
    )
)
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_TEREDO = ipaddress.ip_network("2001::/32")
# A route to the IPv4 Internet (DNS64/NAT64): allowed when the IPv4 address it carries is.
DECIDED_BY_EMBEDDED = (_NAT64,)


def special_purpose(ip: IPAddress) -> str | None:
    """The name of the special-purpose range ``ip`` is in, or None for a public address."""
    for network, name in _NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    return None


def embedded_ipv4(ip: IPAddress) -> Iterator[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with how it carries it."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip in _MAPPED or ip in _TRANSLATED or ip in _NAT64 or ip in _NAT64_LOCAL:
        yield "embeds", low32
    elif ip in _COMPATIBLE and value > 1:
        yield "embeds", low32
    elif ip in _SIX_TO_FOUR:
        yield "6to4 wraps", ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    elif ip in _TEREDO:
        yield "Teredo server", ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        yield "Teredo client", ipaddress.IPv4Address((value & 0xFFFFFFFF) ^ 0xFFFFFFFF)
