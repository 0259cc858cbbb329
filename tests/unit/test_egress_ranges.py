"""The egress guard's special-purpose table: every address below is only an input to the
check; nothing here connects anywhere."""

import pytest
from taskrunner.adapters.egress import SPECIAL_PURPOSE, EgressPolicy
from taskrunner.domain.errors import EgressDeniedError

DENY = EgressPolicy()


def _never_resolve(host, port):
    raise AssertionError("a literal address needs no resolver")


REFUSED = [
    ("0.1.2.3", "'this network'"),
    ("0.0.0.0", "'this network'"),
    ("10.20.30.40", "private-use"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("100.100.100.200", "cloud metadata"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("172.31.255.255", "private-use"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.10", "documentation"),
    ("192.31.196.1", "AS112"),
    ("192.52.193.1", "AMT"),
    ("192.88.99.1", "6to4 relay"),
    ("192.168.0.1", "private-use"),
    ("192.175.48.1", "AS112"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.254", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.99", "documentation"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "limited broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:10.0.0.1", "private-use"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::10.0.0.1", "embeds 10.0.0.1"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("::ffff:0:7f00:1", "embeds 127.0.0.1"),
    ("2002:7f00:1::", "6to4 wraps 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 wraps 169.254.169.254 (a cloud metadata address)"),
    ("2002:c0a8:101::", "6to4 wraps 192.168.1.1"),
    ("2002:0808:0808::1", "6to4"),
    ("64:ff9b::7f00:1", "embeds 127.0.0.1"),
    ("64:ff9b::a00:5", "embeds 10.0.0.5"),
    ("64:ff9b::6440:1", "embeds 100.64.0.1"),
    ("64:ff9b:1::808:808", "local-use IPv4/IPv6 translation"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 obfuscated (XOR 0xffffffff = 80ff:fffe)
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo client 127.0.0.1"),
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "Teredo server 10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo"),
    ("100::1", "discard-only"),
    ("2001:2::1", "benchmarking"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:10::1", "ORCHID"),
    ("5f00::1", "SRv6"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "198.17.255.255",  # just below benchmarking
    "198.20.0.1",  # just above benchmarking
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",  # IPv4-mapped public
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34: how an IPv6-only network reaches it
]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_special_purpose_addresses_are_refused_with_their_reason(address, reason):
    with pytest.raises(EgressDeniedError) as caught:
        DENY.resolve_checked(f"https://{_host(address)}/hook", resolver=_never_resolve)
    assert reason in str(caught.value)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    import ipaddress

    checked = DENY.resolve_checked(f"https://{_host(address)}/hook", resolver=_never_resolve)[3]
    assert ipaddress.ip_address(checked) == ipaddress.ip_address(address)


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_a_name_resolving_to_a_special_address_is_refused_too(address, reason):
    with pytest.raises(EgressDeniedError, match=r"refused: hooks\.example\.com"):
        DENY.resolve_checked("https://hooks.example.com/hook", resolver=lambda host, port: [address])


def test_allow_loopback_does_not_open_wrapped_loopback():
    policy = EgressPolicy(allow_loopback=True)
    assert policy.resolve_checked("http://127.0.0.1:9/", resolver=_never_resolve)[3] == "127.0.0.1"
    for wrapped in ("2002:7f00:1::", "64:ff9b::7f00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe"):
        with pytest.raises(EgressDeniedError):
            policy.resolve_checked(f"http://[{wrapped}]/", resolver=_never_resolve)


def test_table_entries_are_valid_named_networks():
    import ipaddress

    assert len(SPECIAL_PURPOSE) >= 40
    for network, name in SPECIAL_PURPOSE:
        assert ipaddress.ip_network(network) and name
