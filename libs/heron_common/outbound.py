"""The one HTTP client every outbound request goes through (Slack, webhooks, probes, Heroku).

Guarded against server-side request forgery: a target whose address is not globally routable —
private, loopback, link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, reserved,
unspecified, or an IPv4-mapped IPv6 form of one of these — is refused unless an allow-listed
CIDR (``HERON_OUTBOUND_ALLOW_CIDRS``) covers it. The check runs on the addresses the resolver
returns, i.e. at connect time, so DNS rebinding cannot slip past a check made earlier. Redirects
are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenTarget(aiohttp.ClientConnectionError):
    """The target resolves to an address outbound requests may not reach."""


def _normalise(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def forbidden_reason(ip: IPAddress, allow: Iterable[IPNetwork]) -> str | None:
    """Why ``ip`` may not be reached, or None if it may."""
    ip = _normalise(ip)
    for net in allow:
        if ip.version == net.version and ip in net:
            return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if not ip.is_global:
        return "a private or reserved address"
    return None


def check_url(url: str, allow: Iterable[IPNetwork]) -> str | None:
    """What is wrong with ``url`` as an outbound target that can be known without resolving it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with https:// (or http://)"
    host = parts.hostname
    if not host:
        return "has no host"
    try:
        port = parts.port
    except ValueError:
        return "has an invalid port"
    del port
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = forbidden_reason(ip, allow)
    return f"points at {reason}" if reason else None


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
                reasons.add(f"{result['host']} is {reason}")
        if not allowed:
            raise ForbiddenTarget(f"refused to connect to {host}: " + "; ".join(sorted(reasons)))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class GuardedSession:
    """An aiohttp session whose requests are refused before connecting when the target is forbidden."""

    def __init__(self, allow: tuple[IPNetwork, ...], *, timeout: float, limit: int = 100) -> None:
        self._allow = allow
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow), limit=limit, ttl_dns_cache=60)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"User-Agent": "Heron/0.1 (+notifications)"},
        )

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        # IP literals never reach the resolver, so they are checked here.
        problem = check_url(url, self._allow)
        if problem is not None:
            raise ForbiddenTarget(f"refused: {url.split('?', 1)[0]} {problem}")
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, url, **kwargs)

    async def close(self) -> None:
        await self.session.close()
