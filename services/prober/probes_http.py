"""One probe request, timed by phase, through the guarded outbound client.

Each request gets a fresh connection (so connect and TLS are measured, and a dead listener is seen,
on every run) and the guarded resolver (private addresses refused unless allow-listed). Redirects
are never followed. Phases come from aiohttp's ``TraceConfig`` signals (DNS, connection,
response headers); TCP connect and the TLS handshake are one step inside aiohttp, so the
connector here makes them two (connect, then ``start_tls`` on the connected socket), to time
them apart and to say which one failed or ran out of time.

Timings, in seconds: ``dns`` (resolving the host; absent for an IP literal), ``connect`` (TCP),
``tls`` (https only), ``first_byte`` (from the request being sent on the ready connection to the
response's headers: the server's time), ``total`` (start to the end of the body, or to the
failure). The whole run, body and checks included, is bounded by the probe's request timeout,
counted from when it was claimed.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import ssl
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from heron_common.monitors import probe as pr
from heron_common.outbound import ForbiddenTarget, GuardedSession, IPNetwork


@dataclass
class Marks:
    """Monotonic times of one request's phases, and the phase it is in."""

    start: float
    phase: str = "connect"
    dns_start: float | None = None
    dns_end: float | None = None
    connect_start: float | None = None
    tcp_end: float | None = None
    connect_end: float | None = None
    headers_at: float | None = None
    end: float | None = None

    def timings(self, now: float) -> dict[str, float | None]:
        def span(a: float | None, b: float | None) -> float | None:
            return round(b - a, 6) if a is not None and b is not None else None

        connected = self.tcp_end if self.tcp_end is not None else self.connect_end
        return {
            "dns": span(self.dns_start, self.dns_end),
            "connect": span(self.connect_start, connected),
            "tls": span(self.tcp_end, self.connect_end),
            "first_byte": span(self.connect_end, self.headers_at),
            "total": span(self.start, self.end if self.end is not None else now),
        }


# The request in progress in this task: the connector reads it to mark the end of TCP connect.
CURRENT: contextvars.ContextVar[Marks | None] = contextvars.ContextVar("probe_marks", default=None)


def _ctx(params: Any) -> Marks:
    return params.trace_request_ctx


def trace_config() -> aiohttp.TraceConfig:
    now = time.monotonic

    async def dns_start(_: Any, ctx: SimpleNamespace, __: Any) -> None:
        marks = _ctx(ctx)
        marks.dns_start, marks.phase = now(), "dns"

    async def dns_end(_: Any, ctx: SimpleNamespace, __: Any) -> None:
        marks = _ctx(ctx)
        marks.dns_end, marks.phase = now(), "connect"

    async def connect_start(_: Any, ctx: SimpleNamespace, __: Any) -> None:
        marks = _ctx(ctx)
        marks.connect_start, marks.phase = now(), "connect"

    async def connect_end(_: Any, ctx: SimpleNamespace, __: Any) -> None:
        marks = _ctx(ctx)
        marks.connect_end, marks.phase = now(), "wait"

    async def request_end(_: Any, ctx: SimpleNamespace, __: Any) -> None:
        marks = _ctx(ctx)
        marks.headers_at, marks.phase = now(), "body"

    config = aiohttp.TraceConfig(trace_config_ctx_factory=SimpleNamespace)
    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_start.append(connect_start)
    config.on_connection_create_end.append(connect_end)
    config.on_request_end.append(request_end)
    return config


class PhasedConnector(aiohttp.TCPConnector):
    """A TCP connector that connects, then starts TLS, as two timed steps (aiohttp does both in
    one ``create_connection``). Certificate and handshake failures keep aiohttp's error types."""

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> tuple[asyncio.Transport, Any]:
        marks = CURRENT.get()
        sslcontext = kwargs.get("ssl")
        if marks is None or not isinstance(sslcontext, ssl.SSLContext):
            return await super()._wrap_create_connection(*args, **kwargs)
        transport, _ = await super()._wrap_create_connection(*args, **{**kwargs, "ssl": None, "server_hostname": None})
        marks.tcp_end, marks.phase = time.monotonic(), "tls"
        req = kwargs["req"]
        protocol = args[0]()  # a fresh protocol for the TLS transport (the plain one is left behind)
        try:
            tls = await self._loop.start_tls(
                transport, protocol, sslcontext, server_hostname=kwargs.get("server_hostname") or req.host
            )
        except ssl.SSLCertVerificationError as exc:
            transport.abort()
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            transport.abort()
            raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
        except BaseException:
            transport.abort()
            raise
        if tls is None:
            raise aiohttp.ClientConnectorError(req.connection_key, OSError("TLS could not start: connection closed"))
        protocol.connection_made(tls)
        return tls, protocol


def session(allow: tuple[IPNetwork, ...], concurrency: int) -> GuardedSession:
    """The prober's client: the guarded resolver, a fresh connection per probe, no DNS cache (a
    DNS failure must show on the run it happens), phases traced."""
    return GuardedSession(
        allow,
        timeout=None,
        limit=concurrency,
        connector=PhasedConnector,
        trace_configs=[trace_config()],
        user_agent="Heron-Probe/0.1",
        force_close=True,
        use_dns_cache=False,
        ttl_dns_cache=None,
    )


@dataclass
class Outcome:
    up: bool
    status: int | None
    reason: str | None
    timings: dict[str, float | None] = field(default_factory=dict)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return "connection refused"
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return "connection reset"
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
        return _short(exc.strerror or str(exc) or type(exc).__name__)
    return _short(str(exc) or type(exc).__name__)


def failure(exc: BaseException, marks: Marks) -> str:
    """Why a request that got no usable response is down, in words, by the phase it failed in.
    Never the URL's path or query (aiohttp's messages name only host and port here)."""
    if isinstance(exc, ForbiddenTarget):
        return _short(str(exc))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or str(cert)
        return f"TLS certificate not accepted: {_short(str(detail))}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"TLS handshake failed: {_os_reason(exc.os_error)}"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", ())
    if (dns_error and isinstance(exc, dns_error)) or (
        isinstance(exc, aiohttp.ClientConnectorError) and marks.phase == "dns"
    ):
        assert isinstance(exc, aiohttp.ClientConnectorError)
        return f"DNS lookup failed: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = _os_reason(exc.os_error)
        return reason if reason in ("connection refused", "host unreachable") else f"TCP connect failed: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed before a response" if marks.phase == "wait" else "connection closed mid-response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"body broken: {_short(str(exc), 200)}"
    if isinstance(exc, aiohttp.ClientResponseError):  # its str() would show the URL
        return f"invalid HTTP response: {_short(exc.message, 200)}"
    if isinstance(exc, aiohttp.InvalidURL):  # its str() is the URL, query and all
        return "invalid URL"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        return f"{marks.phase} failed: {_os_reason(exc)}"
    if isinstance(exc, aiohttp.ClientError):
        return f"request failed: {type(exc).__name__}"
    # Anything else (a ValueError building the request) may quote what was sent: its name only.
    return f"request could not be made: {type(exc).__name__}"


async def _read(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The body up to MAX_BODY_BYTES, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65_536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= pr.MAX_BODY_BYTES:
            return b"".join(chunks)[: pr.MAX_BODY_BYTES], True
    return b"".join(chunks), False


async def run(http: GuardedSession, config: pr.Config, deadline: float) -> Outcome:
    """Request ``config.url`` and judge the answer, finishing by ``deadline`` (``time.monotonic``)."""
    marks = Marks(start=time.monotonic())
    token = CURRENT.set(marks)
    status: int | None = None  # known once the headers came, even if the body then fails
    try:
        async with asyncio.timeout(max(0.0, deadline - marks.start)):
            async with http.request(
                config.method,
                config.url,
                headers=dict(config.headers),
                data=config.body.encode() if config.body is not None else None,
                trace_request_ctx=marks,
            ) as response:
                if marks.headers_at is None:
                    marks.headers_at = time.monotonic()
                marks.phase, status = "body", response.status
                body, cut = await _read(response) if config.reads_body else (None, False)
                marks.end = time.monotonic()
                seen = pr.Response(
                    response.status,
                    list(response.headers.items()),
                    body,
                    marks.end - marks.start,
                    response.charset,
                    cut,
                )
        reason = pr.evaluate(config, seen)
        return Outcome(reason is None, seen.status, reason, marks.timings(marks.end))
    except TimeoutError:
        now = time.monotonic()
        # Said with the request timeout the user set: the run's own clock started at its claim.
        return Outcome(False, status, pr.timed_out(marks.phase, config.request_timeout), marks.timings(now))
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        now = time.monotonic()
        return Outcome(False, status, failure(exc, marks), marks.timings(now))
    finally:
        CURRENT.reset(token)
