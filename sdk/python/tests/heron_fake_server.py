"""Test helpers for the Heron SDK, in a uniquely named module so that they cannot clash with
another test suite's helpers.

FakeHeron is a real HTTP/1.1 server on 127.0.0.1 (ephemeral port) speaking the wire protocol,
that tests can script: 500, 429 + Retry-After, 401, hang until released, drop the connection,
down (port closed).

Protocols spoken: ``POST /v1/events`` (Bearer API key) and the heartbeat pings
``POST|GET|HEAD /api/v1/hb/{token}[/start|/fail|/{exit_code}][?rid=<uuid>]``: no API key (the
token is the credential), 200 "OK", 404 for an unknown token, first 10 KiB of the body kept, a
start and its finish paired by rid into a run."""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_KEY = "hk_test_123"
HB_TOKEN = "hb_tok_abc123"  # known to every FakeHeron; add more to FakeHeron.hb_tokens
HB_BODY_KEPT = 10 * 1024  # bytes of a ping body the server keeps
_HB_ROUTE = re.compile(r"^/api/v1/hb/(?P<token>[^/]+)(?:/(?P<kind>start|fail|\d+))?$")


@dataclass
class Reply:
    """What the fake server does with one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: tuple[str, str] | None = None  # (code, message) for an error body
    hang: bool = False  # block until FakeHeron.release is set, then drop the connection
    drop: bool = False  # close the connection at once, without an answer


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes  # body as received on the wire
    body: Any  # decoded (gunzipped) JSON
    gzipped: bool
    status: int  # what the server answered (0: no answer)
    at: float  # time.monotonic() when the request was read
    method: str = "POST"


@dataclass
class HbPing:
    """A heartbeat ping the fake recorded (answered 200)."""

    method: str
    token: str
    kind: str  # "success", "start", "fail" or "exit:<code>"
    rid: str | None
    body: bytes  # as kept by the server: the first HB_BODY_KEPT bytes
    received_bytes: int  # body length on the wire
    headers: dict[str, str]


@dataclass
class HbRun:
    """A start paired with its finish by rid (the server records the run's duration)."""

    token: str
    rid: str
    outcome: str  # the finish's kind
    duration: float


class FakeHeron:
    def __init__(self) -> None:
        self.api_key = API_KEY
        self.metadata_limit = 8192  # bytes of compact JSON, as the real server measures it
        self.cond = threading.Condition()
        self.requests: list[Received] = []
        self.events: list[dict[str, Any]] = []  # events acknowledged with 200
        self.hb_tokens: set[str] = {HB_TOKEN}
        self.hb_pings: list[HbPing] = []  # heartbeat pings acknowledged with 200
        self.hb_runs: list[HbRun] = []
        self._hb_started: dict[tuple[str, str], float] = {}  # (token, rid) -> monotonic start
        self.script: deque[Reply] = deque()  # next replies, then `default`
        self.default = Reply()
        self.release = threading.Event()  # unblocks hanging requests
        self.hanging = 0  # requests currently held
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self) -> None:
        """Start listening (on the same port as before after a down())."""
        fake = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request: Any, client_address: Any) -> None:
                fake._conns.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request: Any) -> None:
                fake._conns.discard(request)
                super().shutdown_request(request)

        class Handler(_Handler):
            server_ref = fake

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True, name="fake-heron")
        self._thread.start()

    def down(self) -> None:
        """Stop listening and cut every open (keep-alive) connection: the port refuses."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        assert self._thread is not None
        self._thread.join(5)

    def close(self) -> None:
        self.release.set()
        self.down()

    # -- scripting and waiting ---------------------------------------------------------------

    def then(self, *replies: Reply) -> FakeHeron:
        with self.cond:
            self.script.extend(replies)
        return self

    def wait_until(self, predicate: Callable[[FakeHeron], bool], timeout: float = 15.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def wait_events(self, n: int, timeout: float = 15.0) -> bool:
        return self.wait_until(lambda s: len(s.events) >= n, timeout)

    def wait_requests(self, n: int, timeout: float = 15.0) -> bool:
        return self.wait_until(lambda s: len(s.requests) >= n, timeout)

    def wait_hanging(self, n: int = 1, timeout: float = 15.0) -> bool:
        return self.wait_until(lambda s: s.hanging >= n, timeout)

    def names(self) -> list[str]:
        with self.cond:
            return [e["event_name"] for e in self.events]

    def wait_hb(self, n: int, timeout: float = 15.0) -> bool:
        return self.wait_until(lambda s: len(s.hb_pings) >= n, timeout)

    def event_requests(self) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.path == "/v1/events"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_ref: FakeHeron

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"code": code, "message": message}}, headers)

    def _text(self, status: int, text: str, head: bool = False) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        fake = self.server_ref
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        is_hb = self.path.startswith("/api/v1/hb/")
        gzipped = headers.get("content-encoding") == "gzip"
        data = gzip.decompress(raw) if gzipped else raw
        body = json.loads(data) if data and not is_hb else None
        req = Received(self.path, headers, raw, body, gzipped, 0, time.monotonic(), method)
        with fake.cond:
            reply = fake.script.popleft() if fake.script else fake.default
            fake.requests.append(req)
            if reply.hang:
                fake.hanging += 1
            fake.cond.notify_all()

        if reply.hang:
            fake.release.wait()
            with fake.cond:
                fake.hanging -= 1
                fake.cond.notify_all()
            self.close_connection = True  # the client never gets an answer
            return
        if reply.drop:
            self.close_connection = True
            return
        if reply.status != 200:
            req.status = reply.status
            code, message = reply.error or ("error", f"scripted {reply.status}")
            self._error(reply.status, code, message, reply.headers)
            return
        if is_hb:
            self._heartbeat(method, req, raw)
            return
        if method != "POST":
            req.status = 405
            self._error(405, "method_not_allowed", method)
            return
        if headers.get("authorization") != f"Bearer {fake.api_key}":
            req.status = 401
            self._error(401, "unauthorized", "invalid API key")
            return
        if self.path == "/v1/events":
            events = body["events"] if isinstance(body, dict) else None
            if not isinstance(events, list) or not 1 <= len(events) <= 1000:
                req.status = 422
                self._error(422, "invalid", "events must be a list of 1..1000 events")
                return
            for event in events:
                if not isinstance(event.get("event_name"), str) or not isinstance(event.get("timestamp"), float):
                    req.status = 422
                    self._error(422, "invalid", "bad event")
                    return
                if len(json.dumps(event.get("metadata", {}), separators=(",", ":")).encode()) > fake.metadata_limit:
                    req.status = 413  # like the real server: the whole batch is refused
                    self._error(413, "metadata_too_large", "metadata is too large")
                    return
            with fake.cond:
                req.status = 200
                fake.events.extend(events)
                fake.cond.notify_all()
            self._send(200, {"status": "stored", "count": len(events)})
        else:
            req.status = 404
            self._error(404, "not_found", self.path)

    def _heartbeat(self, method: str, req: Received, raw: bytes) -> None:
        """The heartbeat ping routes. No API key: the token in the URL is the credential."""
        fake = self.server_ref
        head = method == "HEAD"
        parts = urlsplit(self.path)
        match = _HB_ROUTE.match(parts.path)
        token = unquote(match["token"]) if match else ""
        if match is None or token not in fake.hb_tokens:
            req.status = 404
            self._text(404, "Not found", head)
            return
        rids = parse_qs(parts.query).get("rid", [])
        rid = None
        if rids:
            try:
                rid = str(uuid.UUID(rids[0]))
            except ValueError:
                req.status = 400
                self._error(400, "invalid_rid", "rid must be a UUID")
                return
        kind = match["kind"] or "success"
        if kind.isdigit():
            kind = f"exit:{int(kind)}"
        ping = HbPing(method, token, kind, rid, raw[:HB_BODY_KEPT], len(raw), req.headers)
        now = time.monotonic()
        with fake.cond:
            req.status = 200
            fake.hb_pings.append(ping)
            if rid is not None and kind == "start":
                fake._hb_started[(token, rid)] = now
            elif rid is not None and (token, rid) in fake._hb_started:
                started = fake._hb_started.pop((token, rid))
                fake.hb_runs.append(HbRun(token, rid, kind, now - started))
            fake.cond.notify_all()
        self._text(200, "OK", head)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """For client-side conditions nothing can signal (e.g. "a connection was refused")."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
