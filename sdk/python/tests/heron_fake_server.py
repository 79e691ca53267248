"""Test helpers for the Heron SDK, in a uniquely named module so that they cannot clash with
another test suite's helpers.

FakeHeron is a real HTTP/1.1 server on 127.0.0.1 (ephemeral port) speaking the wire protocol,
that tests can script: 500, 429 + Retry-After, 401, hang until released, down (port closed)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "hk_test_123"


@dataclass
class Reply:
    """What the fake server does with one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: tuple[str, str] | None = None  # (code, message) for an error body
    hang: bool = False  # block until FakeHeron.release is set, then drop the connection


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes  # body as received on the wire
    body: Any  # decoded (gunzipped) JSON
    gzipped: bool
    status: int  # what the server answered (0: no answer)
    at: float  # time.monotonic() when the request was read


class FakeHeron:
    def __init__(self) -> None:
        self.api_key = API_KEY
        self.metadata_limit = 8192  # bytes of compact JSON, as the real server measures it
        self.cond = threading.Condition()
        self.requests: list[Received] = []
        self.events: list[dict[str, Any]] = []  # events acknowledged with 200
        self.pings: list[Received] = []  # pings acknowledged with 200
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

    def do_POST(self) -> None:
        fake = self.server_ref
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        gzipped = headers.get("content-encoding") == "gzip"
        data = gzip.decompress(raw) if gzipped else raw
        body = json.loads(data) if data else None
        req = Received(self.path, headers, raw, body, gzipped, 0, time.monotonic())
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
        if reply.status != 200:
            req.status = reply.status
            code, message = reply.error or ("error", f"scripted {reply.status}")
            self._error(reply.status, code, message, reply.headers)
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
        elif self.path.startswith("/v1/ping/"):
            with fake.cond:
                req.status = 200
                fake.pings.append(req)
                fake.cond.notify_all()
            self._send(200, {"status": "ok"})
        else:
            req.status = 404
            self._error(404, "not_found", self.path)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """For client-side conditions nothing can signal (e.g. "a connection was refused")."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
