"""The one HTTP client every outbound request goes through (Slack, webhooks, probes, Heroku).

Guarded against server-side request forgery: a target whose address is not globally routable —
private, loopback, link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, reserved,
unspecified — is refused unless an allow-listed CIDR (``HERON_OUTBOUND_ALLOW_CIDRS``) covers it.

IPv6 forms that carry an IPv4 address are judged by the IPv4 address they carry, since that is
where the traffic ends up: IPv4-mapped (``::ffff:0:0/96``), IPv4-compatible (``::/96``), NAT64
(``64:ff9b::/96``), 6to4 (``2002::/16``) and Teredo (``2001::/32``, whose server and client
addresses must both pass). The local-use NAT64 prefix ``64:ff9b:1::/48`` is never public. The
allow list applies to the address as written *or* to the IPv4 it carries: allowing
``127.0.0.0/8`` allows ``[::ffff:127.0.0.1]`` and ``[64:ff9b::7f00:1]`` too, and allowing an IPv6
CIDR such as ``64:ff9b::/96`` allows everything in it (an operator's explicit choice).

The check runs on the addresses the resolver returns, i.e. at connect time, so DNS rebinding
cannot slip past a check made earlier; IP literals never reach the resolver and are checked
before connecting. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# DNS names in practice: letters, digits, hyphens (not at either end) and underscores, which DNS
# allows and some real hosts use. Applied after IDNA encoding, so it is ASCII only.
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
# A last label that libc's inet_aton would read as a number (127.1, 0x7f.1, 2130706433).
_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)\Z")
MAX_HOST = 253


class ForbiddenTarget(aiohttp.ClientConnectionError):
    """The target is one outbound requests may never reach: retrying cannot help."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, tuple[ipaddress.IPv4Address, ...]] | None:
    """The IPv4 addresses an IPv6 address carries, with its form ("a 6to4"); None if it carries none."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped", (ip.ipv4_mapped,)
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are IPv6's own unspecified and loopback
        return "an IPv4-compatible", (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip in _NAT64:
        return "a NAT64", (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour is not None:
        return "a 6to4", (ip.sixtofour,)
    if ip.teredo is not None:
        server, client = ip.teredo
        return "a Teredo", (client, server)
    return None


def _allowed(ip: IPAddress, allow: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in allow)


def _classify(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    # Python counts unassigned IPv6 space (outside 2000::/3) as global but reserved: nothing
    # public lives there.
    if ip.is_reserved or not ip.is_global:
        return "a private or reserved address"
    return None


def forbidden_reason(ip: IPAddress, allow: Iterable[IPNetwork]) -> str | None:
    """Why ``ip`` may not be reached, or None if it may."""
    allow = tuple(allow)
    if _allowed(ip, allow):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            # Its IPv4 sits at an operator-chosen prefix length: it cannot be read reliably.
            return "a local-use NAT64 address (64:ff9b:1::/48), never public"
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            form, addresses = embedded
            for v4 in addresses:
                reason = None if _allowed(v4, allow) else _classify(v4)
                if reason is not None:
                    return f"{form} form of {v4}, {reason}"
            return None
    return _classify(ip)


# Spaces, C0/C1 control characters (NUL included), DEL and any other whitespace. Checked on the raw
# string because urlsplit silently drops tabs and newlines, so what it parsed is not what is stored.
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")


def _host_ip(host: str, bracketed: bool) -> IPAddress | None:
    """The IP address a URL's host is, or None for a DNS name; ValueError says why it is neither."""
    if bracketed:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("only an IPv6 address may stand in brackets") from None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    name = host.removesuffix(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{host!r} is not a valid domain name") from None
    labels = ascii_name.split(".")
    if _NUMERIC.match(labels[-1]):
        # Resolvers read 127.1, 0x7f.1 or 2130706433 as addresses; one spelling only.
        raise ValueError(f"{host!r}: a numeric host must be a dotted-quad IPv4 address (a.b.c.d)")
    if len(ascii_name) > MAX_HOST or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid domain name")
    return None


def check_url(url: str, allow: Iterable[IPNetwork]) -> str | None:
    """What is wrong with ``url`` as an outbound target that can be known without resolving it."""
    if _UNSAFE.search(url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with https:// (or http://)"
    if "@" in parts.netloc:
        # Credentials would be stored, shown back in the API and logged with the URL.
        return "must not contain credentials (user:password@)"
    if not host:
        return "has no host"
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "has an invalid port"
    try:
        ip = _host_ip(host, bracketed=parts.netloc.startswith("["))
    except ValueError as exc:
        return f"has an invalid host: {exc}"
    if ip is None:
        return None  # a name: judged by what it resolves to, when connecting
    reason = forbidden_reason(ip, allow)
    return f"points at {reason}" if reason else None


def _shown(url: str) -> str:
    """The URL for an error message: no credentials, no query (tokens live there)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    except ValueError:
        return "the URL"


class GuardedResolver(AbstractResolver):
    def __init__(self, allow: tuple[IPNetwork, ...]) -> None:
        self._inner = DefaultResolver()
        self._allow = allow

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = []
        reasons = set()
        for result in results:
            reason = forbidden_reason(ipaddress.ip_address(result["host"]), self._allow)
            if reason is None:
                allowed.append(result)
            else:
                reasons.add(f"{result['host']}, {reason}")
        if not allowed:
            raise ForbiddenTarget(f"refused: {host} resolves to " + "; ".join(sorted(reasons)))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class GuardedSession:
    """An aiohttp session whose requests are refused before connecting when the target is forbidden."""

    def __init__(
        self,
        allow: tuple[IPNetwork, ...],
        *,
        timeout: float | None,
        limit: int = 100,
        connector: type[aiohttp.TCPConnector] = aiohttp.TCPConnector,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        user_agent: str = "Heron/0.1 (+notifications)",
        **connector_options: Any,
    ) -> None:
        """``timeout`` None: the caller bounds each request. The prober passes its own connector
        class (TLS timed apart from TCP), trace configs and connector options (a fresh connection
        per probe); the resolver is always the guarded one."""
        self._allow = allow
        options: dict[str, Any] = {"limit": limit, "ttl_dns_cache": 60, **connector_options}
        self.session = aiohttp.ClientSession(
            connector=connector(resolver=GuardedResolver(allow), **options),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"User-Agent": user_agent},
            trace_configs=trace_configs,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        # IP literals never reach the resolver, so they are checked here.
        problem = check_url(url, self._allow)
        if problem is not None:
            raise ForbiddenTarget(f"refused: {_shown(url)} {problem}")
        # aiohttp connects to the host as yarl reads it: if that is an IP literal, check it too, so
        # a URL the two parsers read differently cannot reach an address check_url never saw.
        target = URL(url)
        try:
            ip = ipaddress.ip_address(target.host or "")
        except ValueError:
            ip = None
        reason = None if ip is None else forbidden_reason(ip, self._allow)
        if reason is not None:
            raise ForbiddenTarget(f"refused: {_shown(url)} points at {reason}")
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, target, **kwargs)

    async def close(self) -> None:
        await self.session.close()
