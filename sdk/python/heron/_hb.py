"""The heartbeat ping protocol as pure functions (no I/O), so each rule is tested directly.

Wire contract (served by Heron's API)::

    POST|GET|HEAD {base}/api/v1/hb/{token}[/start|/fail|/{exit_code}][?rid=<uuid>]

The token in the URL is the only credential. The body (the server keeps its first 10 KiB) may
carry a log excerpt or a failure reason. 200 means recorded, 404 an unknown token.
"""

from __future__ import annotations

import traceback
import uuid
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from ._transport import Endpoint, parse_endpoint

#: The server keeps only this many bytes of a ping body; sending more only costs bandwidth.
MAX_BODY_BYTES = 10 * 1024
#: Path of the heartbeat routes under a Heron base URL.
HB_PATH = "/api/v1/hb/"
#: Statuses by name. "ok" is the SDK 0.1 spelling of "success", still accepted.
STATUS_SEGMENTS = {"success": "", "ok": "", "start": "/start", "fail": "/fail"}
# Characters of the traceback kept in a failure body: enough for the innermost frames.
_TRACEBACK_CHARS = 2000

if TYPE_CHECKING:  # annotations only, so Python 3.9 never evaluates ``str | int``
    from typing import TypeAlias

    #: "success" (or "ok"), "start", "fail", or a process exit code.
    Status: TypeAlias = str | int


class Target(NamedTuple):
    """Where one ping goes: the server and the path (with its query string)."""

    endpoint: Endpoint  # scheme, host and port only (base_path is always "")
    path: str

    @property
    def url(self) -> str:
        return self.endpoint.url + self.path


def status_segment(status: Status) -> str:
    """The path suffix for ``status``: "", "/start", "/fail" or "/{exit_code}".

    An exit code outside 0..255 (e.g. ``-9`` from ``subprocess`` for a killed child) is not a
    code the server can receive, but it is certainly a failure: it is sent as ``fail``.
    Raises TypeError/ValueError for anything else.
    """
    if isinstance(status, bool):  # bool is an int subclass; True/False is surely a mistake
        raise TypeError("ping status must be 'success', 'start', 'fail' or an int exit code, got a bool")
    if isinstance(status, int):
        return f"/{status}" if 0 <= status <= 255 else "/fail"
    if isinstance(status, str) and status in STATUS_SEGMENTS:
        return STATUS_SEGMENTS[status]
    raise ValueError(f"ping status must be 'success', 'start', 'fail' or an int exit code, got {status!r}")


def check_rid(rid: str | uuid.UUID | None) -> str | None:
    """The run id as the server wants it (a UUID), or ValueError."""
    if rid is None:
        return None
    try:
        return str(rid if isinstance(rid, uuid.UUID) else uuid.UUID(str(rid)))
    except ValueError:
        raise ValueError(f"rid must be a UUID, got {rid!r}") from None


def build_target(token_or_url: str, base_url: str, status: Status, rid: str | uuid.UUID | None = None) -> Target:
    """The target of a ping. ``token_or_url`` is either a heartbeat's token (appended to
    ``{base_url}/api/v1/hb/``) or its full ping URL (``http(s)://...``, used as is)."""
    if not isinstance(token_or_url, str) or not token_or_url.strip():
        raise ValueError(f"heartbeat token or URL must be a non-empty string, got {token_or_url!r}")
    value = token_or_url.strip()
    segment = status_segment(status)
    run_id = check_rid(rid)
    query = ""
    if value.lower().startswith(("http://", "https://")):
        parts = urlsplit(value)
        if parts.fragment:
            raise ValueError("a heartbeat ping URL must not have a #fragment")
        # parse_endpoint checks the scheme, host and port; the path is the ping path.
        endpoint = parse_endpoint(f"{parts.scheme}://{parts.netloc}")
        path = parts.path.rstrip("/")
        if not path:
            raise ValueError(f"heartbeat ping URL has no path: {value!r}")
        query = parts.query
    else:
        if "/" in value or "?" in value:
            raise ValueError(f"a heartbeat token has no '/' or '?' (a URL must start with http(s)://): {value!r}")
        endpoint = parse_endpoint(base_url)
        path = endpoint.base_path + HB_PATH + quote(value, safe="")
        endpoint = endpoint._replace(base_path="")
    path += segment
    if run_id is not None:
        query = (query + "&" if query else "") + urlencode({"rid": run_id})
    return Target(endpoint, path + ("?" + query if query else ""))


def encode_body(body: str | bytes | None) -> bytes:
    """The request body: UTF-8 text (or the bytes given), cut to :data:`MAX_BODY_BYTES`.

    Text is cut on a character boundary, so the server never gets half a character."""
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body[:MAX_BODY_BYTES])
    if not isinstance(body, str):
        raise TypeError(f"ping body must be str, bytes or None, got {type(body).__name__}")
    data = body.encode("utf-8", "replace")
    if len(data) <= MAX_BODY_BYTES:
        return data
    return data[:MAX_BODY_BYTES].decode("utf-8", "ignore").encode("utf-8")


def failure_body(exc: BaseException) -> str:
    """The body of the ``fail`` ping sent when a monitored block raises: the exception's type
    and message first (what an alert shows), then the end of the traceback (where it broke)."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    message = str(exc)
    head = f"{name}: {message}" if message else name
    tb = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    if len(tb) > _TRACEBACK_CHARS:
        tb = "...\n" + tb[-_TRACEBACK_CHARS:]
    return f"{head}\n\n{tb}"


def redact(target: Target) -> str:
    """The ping URL for log messages: the token is a credential, so only its start is shown."""
    path = target.path.split("?", 1)[0]
    head, sep, rest = path.partition(HB_PATH)
    if sep:
        token, _, tail = rest.partition("/")
        shown = token[:4] + "..." if len(token) > 4 else "..."
        path = head + sep + shown + ("/" + tail if tail else "")
    else:
        path = "/..."  # a URL of an unknown shape: show no part of it
    return target.endpoint.url + path
