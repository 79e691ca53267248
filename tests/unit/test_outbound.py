"""The outbound guard's pure logic: which addresses and URLs may be reached."""

from __future__ import annotations

import ipaddress

import pytest

from heron_common.outbound import check_url, embedded_ipv4, forbidden_reason

LOOPBACK_ALLOWED = (ipaddress.ip_network("127.0.0.0/8"),)


def reason(ip: str, allow=()) -> str | None:
    return forbidden_reason(ipaddress.ip_address(ip), allow)


# --- IPv6 forms that carry an IPv4 address ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "form", "embedded"),
    [
        ("::ffff:127.0.0.1", "IPv4-mapped", ["127.0.0.1"]),
        ("::127.0.0.1", "IPv4-compatible", ["127.0.0.1"]),
        ("64:ff9b::7f00:1", "NAT64", ["127.0.0.1"]),
        ("2002:7f00:1::", "6to4", ["127.0.0.1"]),
        # Teredo: server in bits 32-63, client as the bit-inverted last 32 bits (RFC 4380).
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo", ["192.0.2.45", "65.54.227.120"]),
    ],
)
def test_embedded_ipv4_is_found_in_every_form(ip, form, embedded) -> None:
    found = embedded_ipv4(ipaddress.IPv6Address(ip))
    assert found is not None
    assert form in found[0] and [str(a) for a in found[1]] == embedded


@pytest.mark.parametrize("ip", ["::", "::1", "2606:4700::1111", "fe80::1", "64:ff9b:1::1"])
def test_addresses_that_embed_nothing(ip) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(ip)) is None


@pytest.mark.parametrize(
    ("ip", "says"),
    [
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("::10.0.0.1", "private"),
        ("::169.254.169.254", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64, well-known prefix
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of the metadata address
        ("64:ff9b::a00:1", "private"),
        ("64:ff9b:1::808:808", "local-use NAT64"),  # never public, whatever it embeds
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("2002:a9fe:a9fe::1", "link-local"),
        ("2002:c0a8:101::", "private"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
        ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", "loopback"),  # Teredo server 127.0.0.1, client 8.8.8.8
        ("::ffff:10.0.0.1", "private"),
        ("::2", "0.0.0.2"),  # IPv4-compatible 0.0.0.2, "this network"
    ],
)
def test_embedded_forms_are_judged_by_the_ipv4_they_carry(ip, says) -> None:
    why = reason(ip)
    assert why is not None and says in why, why


@pytest.mark.parametrize(
    "ip",
    [
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: server 65.54.227.120, client 8.8.8.8
        "2606:4700:4700::1111",  # plain global IPv6
        "93.184.216.34",
    ],
)
def test_embedded_forms_of_public_addresses_pass(ip) -> None:
    assert reason(ip) is None


def test_reserved_ipv6_outside_global_unicast_is_refused() -> None:
    assert reason("100::1") is not None  # discard prefix
    assert reason("4000::1") is not None  # unassigned


def test_the_allow_list_covers_embedded_forms_through_their_ipv4() -> None:
    # Allow-listing 127.0.0.0/8 allows every form whose traffic ends at 127.x.
    for ip in ("::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        assert reason(ip, LOOPBACK_ALLOWED) is None, ip
    # Teredo carries two addresses: both must be allowed.
    assert reason("2001:0:7f00:1:8000:63bf:80ff:fffe", LOOPBACK_ALLOWED) is None
    assert reason("2001:0:a00:1:8000:63bf:80ff:fffe", LOOPBACK_ALLOWED) is not None  # server 10.0.0.1
    # An IPv6 CIDR that covers the address as written allows it too (an operator's explicit choice).
    assert reason("64:ff9b::a00:1", (ipaddress.ip_network("64:ff9b::/96"),)) is None
    assert reason("64:ff9b:1::1", (ipaddress.ip_network("64:ff9b:1::/48"),)) is None
    # The local-use NAT64 prefix is not rescued by allowing what it embeds.
    assert reason("64:ff9b:1:7f00:1::", LOOPBACK_ALLOWED) is not None


# --- URLs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::127.0.0.1]/hook", "loopback"),
        ("http://[64:ff9b::7f00:1]/hook", "loopback"),
        ("http://[2002:7f00:1::]/hook", "loopback"),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("https://user:pass@example.com/hook", "must not contain credentials (user:password@)"),
        ("https://user@example.com/hook", "credentials"),
        ("https://:pw@example.com/hook", "credentials"),
        ("https://exa mple.com/hook", "spaces or control characters"),
        ("https://example.com/ho ok", "spaces or control characters"),
        ("https://exa\tmple.com/", "spaces or control characters"),  # urlsplit would silently drop it
        ("https://exa\nmple.com/", "spaces or control characters"),
        ("https://exa\x00mple.com/", "spaces or control characters"),
        ("https://exa\x7fmple.com/", "spaces or control characters"),
        ("https://exa%20mple.com/", "invalid host"),
        ("https://exa<mple.com/", "invalid host"),
        ("https://example..com/", "invalid host"),
        ("https://-example.com/", "invalid host"),
        ("https://" + "a" * 64 + ".com/", "invalid host"),
        ("https://" + ".".join(["abcdefgh"] * 30) + ".com/", "invalid host"),
        ("http://[v1.fe]/", "invalid host"),
        ("http://[not-ipv6]/", "not a valid URL"),
        ("http://0x7f.1/", "dotted-quad"),
        ("http://2130706433/", "dotted-quad"),
        ("http://127.1/", "dotted-quad"),
        ("http://1.2.3.4.5/", "dotted-quad"),
        ("https://example.com:99999/", "invalid port"),
        ("file:///etc/passwd", "https://"),
        ("https:///nohost", "no host"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url, says) -> None:
    problem = check_url(url, ())
    assert problem is not None and says in problem, problem


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T/B/X",
        "https://Example.COM./path?q=1#frag",
        "https://bücher.example/hook",  # IDNA
        "https://my_host.example.com/hook",  # underscores occur in real DNS names
        "http://93.184.216.34:8080/hook",
        "http://[2606:4700:4700::1111]/hook",
        "http://[64:ff9b::808:808]/hook",
        "http://localhost:9/hook",  # a name: judged by what it resolves to, when connecting
        "https://1password.example/",
    ],
)
def test_good_urls_pass(url) -> None:
    assert check_url(url, ()) is None


def test_allow_listed_literals_pass_check_url() -> None:
    assert check_url("http://[::127.0.0.1]:9/", LOOPBACK_ALLOWED) is None
    assert check_url("http://127.0.0.1:9/", LOOPBACK_ALLOWED) is None
    # Credentials are refused whatever the allow list says.
    assert check_url("http://u:p@127.0.0.1:9/", LOOPBACK_ALLOWED) is not None
