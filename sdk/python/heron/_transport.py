"""Minimal blocking HTTP/1.1 transport on top of ``http.client`` (standard library only).

One persistent (keep-alive) connection, used by a single sender thread. Not thread-safe by
design: each :class:`~heron.Client` owns one transport and only its sender thread uses it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import ssl
import time
from typing import NamedTuple
from urllib.parse import urlsplit

# A request on a reused keep-alive connection that fails with one of these never reached a
# live server: the server had closed the idle connection. Retry it at once on a new one.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)

# Error bodies are small JSON documents; never read an unbounded body into memory.
_MAX_RESPONSE_BYTES = 64 * 1024


class Endpoint(NamedTuple):
    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/prefix" (no trailing slash)

    @property
    def url(self) -> str:
        default_port = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port == default_port else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.base_path}"


def parse_endpoint(url: str) -> Endpoint:
    """Parse ``http(s)://host[:port][/prefix]``; raise ValueError if it is not usable."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("Heron endpoint must be a non-empty URL such as http://localhost:8080")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"Heron endpoint must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"Heron endpoint has no host: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"Heron endpoint must not have a query string or fragment: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Heron endpoint has an invalid port: {url!r}") from exc
    if port is None:
        port = 443 if scheme == "https" else 80
    return Endpoint(scheme, parts.hostname, port, parts.path.rstrip("/"))


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class Transport:
    def __init__(self, endpoint: Endpoint, ssl_context: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self._ssl_context = ssl_context
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            ep = self.endpoint
            if ep.scheme == "https":
                context = self._ssl_context or ssl.create_default_context()
                conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout, context=context)
            else:
                conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
            self._conn = conn
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """POST ``body`` to ``base_path + path``. Raises OSError / http.client.HTTPException."""
        url = self.endpoint.base_path + path
        for attempt in (1, 2):
            conn = self._connection(timeout)
            reused = conn.sock is not None
            try:
                conn.request("POST", url, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read(_MAX_RESPONSE_BYTES)
                if not resp.isclosed():
                    # Oversized body: don't leave unread bytes on a keep-alive connection.
                    self.close()
                return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            except _STALE_CONNECTION_ERRORS:
                self.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass

    def forget(self) -> None:
        """Drop the connection without touching its socket (used in a forked child, whose
        socket is a copy of the parent's)."""
        self._conn = None


def request_once(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """One request on a fresh connection, closed afterwards. For heartbeat pings: they are
    rare and may go to any host (a pasted ping URL), so a kept-alive connection buys nothing.
    Raises OSError / http.client.HTTPException."""
    conn: http.client.HTTPConnection
    if endpoint.scheme == "https":
        context = ssl_context or ssl.create_default_context()
        conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(_MAX_RESPONSE_BYTES)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def parse_retry_after(value: str | None, maximum: float = 3600.0) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, maximum))


def describe_error(resp: Response) -> str:
    """A short human-readable reason from a Heron error response."""
    try:
        err = json.loads(resp.body.decode("utf-8"))["error"]
        code, message = err.get("code"), err.get("message")
        if code and message:
            return f"{code}: {message}"
        if message or code:
            return str(message or code)
    except Exception:
        pass
    text = resp.body[:200].decode("utf-8", "replace").strip()
    return text or http.client.responses.get(resp.status, "")
