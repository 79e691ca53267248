"""The ``probe`` kind: Heron requests a URL from the outside (Heii On-Call's outbound probes). Pure.

Three parts, each without I/O:

- **The settings** (:func:`parse_config`): the request (``url``, ``method``, ``headers``, ``body``),
  how often (``interval``, start to start) and how long a request may take (``request_timeout``),
  what counts as up (``expected_status``, default 200 or 204; for a 3xx an exact
  ``expected_location``; a header containing a string; the body containing a string, matching a
  regex, or a JSON path equal to a value; ``max_latency``), and ``timeout``: how long the endpoint
  must be down *continuously* before an incident opens. Every field is checked here, and a
  :class:`ConfigError` names the one that is wrong.
- **The verdict** on one response (:func:`evaluate`): None if it is up, else why it is down
  (``status 503 (expected 200 or 204)``), and the texts for requests that got no response at all
  (:func:`timed_out`: ``TLS handshake timed out after 10 s``).
- **The state machine** (:func:`observe`), fed the results in the detector:

  - ``new``: no result yet (since creation or resuming);
  - ``up``: the last result was up;
  - ``failing``: down since ``down_since``, for less than ``timeout`` so far: no incident (a flap
    shorter than the timeout opens nothing);
  - ``down``: down continuously for ``timeout``: an incident is open (``incident.opened`` +
    ``probe.down``); the first up result resolves it (``incident.resolved`` + ``probe.up``);
  - ``paused`` (shared): results are kept, nothing is judged.

  "Continuously" needs evidence: results at most :func:`max_gap` apart. When the results stop for
  longer (a prober outage, Heron's broker down), the failing run starts again at the next result
  instead of counting the unobserved time as down. Results older than the newest applied one
  (two probers' results crossing on the way) change nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson
import regex

from heron_common.monitors import OPEN, PAUSED, RESOLVE, Flip
from heron_common.outbound import IPNetwork, check_url

KIND = "probe"
NEW, UP, FAILING, DOWN = "new", "up", "failing", "down"
# The kind's own topics, written beside the incident.* alert of the same flip.
TOPICS = {OPEN: "probe.down", RESOLVE: "probe.up"}

METHODS = ("HEAD", "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
DEFAULT_METHOD = "HEAD"
DEFAULT_STATUS = (200, 204)
DEFAULT_INTERVAL = 60.0
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 300.0
MAX_INTERVAL = 86400.0  # a day
MAX_TIMEOUT = 366 * 86400.0
MAX_URL = 2048
MAX_HEADERS = 50
MAX_HEADER_VALUE = 4096
MAX_REQUEST_BODY = 65_536
MAX_TEXT = 1000  # a string to look for, a regex, a JSON path, a JSON value (encoded)
MAX_JSON_DEPTH = 32  # json_equals: as deep as HERON_MAX_JSON_DEPTH allows by default
# How much of a response body is read and judged; a longer body is cut there (and said so).
MAX_BODY_BYTES = 1_048_576
# The longest a body regex may run on one response; a pattern that takes longer is down (a
# catastrophic pattern must not stall the prober).
REGEX_TIMEOUT = 0.05
PHASES = ("dns", "connect", "tls", "first_byte", "total")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Set by the HTTP client itself; sending them by hand breaks the request.
_MANAGED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect"}
)
# Header values shown back by the API as "***": they are credentials.
_SECRET_HEADER = re.compile(r"auth|cookie|token|secret|key|password|session|signature", re.IGNORECASE)


class ConfigError(ValueError):
    """A setting that cannot be used; ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


@dataclass(frozen=True)
class Limits:
    """What the installation allows (settings): minimums, and the outbound guard's allow list."""

    min_interval: float = 60.0
    min_timeout: float = 180.0
    allow: tuple[IPNetwork, ...] = ()


# -- the settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    url: str
    method: str = DEFAULT_METHOD
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    interval: float = DEFAULT_INTERVAL
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    expected_status: tuple[int, ...] = DEFAULT_STATUS
    expected_location: str | None = None
    header_name: str | None = None
    header_contains: str | None = None
    body_contains: str | None = None
    body_regex: str | None = None
    json_path: str | None = None
    json_equals: Any = None  # judged only with json_path (null is a value to expect)
    max_latency: float | None = None

    @property
    def reads_body(self) -> bool:
        return self.method != "HEAD"

    def to_dict(self) -> dict[str, Any]:
        """What ``monitors.config`` keeps: every field, optional ones only when set."""
        out: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "interval": self.interval,
            "request_timeout": self.request_timeout,
            "timeout": self.timeout,
            "expected_status": list(self.expected_status),
        }
        for name in (
            "body",
            "expected_location",
            "header_name",
            "header_contains",
            "body_contains",
            "body_regex",
            "json_path",
            "max_latency",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.json_path is not None:
            out["json_equals"] = self.json_equals
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Config:
        """A stored config (checked when it was saved)."""
        return cls(
            url=str(config["url"]),
            method=str(config.get("method") or DEFAULT_METHOD),
            headers=tuple((str(k), str(v)) for k, v in (config.get("headers") or {}).items()),
            body=config.get("body"),
            interval=float(config.get("interval") or DEFAULT_INTERVAL),
            request_timeout=float(config.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT),
            timeout=float(config.get("timeout") or DEFAULT_TIMEOUT),
            expected_status=tuple(int(s) for s in config.get("expected_status") or DEFAULT_STATUS),
            expected_location=config.get("expected_location"),
            header_name=config.get("header_name"),
            header_contains=config.get("header_contains"),
            body_contains=config.get("body_contains"),
            body_regex=config.get("body_regex"),
            json_path=config.get("json_path"),
            json_equals=config.get("json_equals"),
            max_latency=float(config["max_latency"]) if config.get("max_latency") is not None else None,
        )


def shown_url(url: str) -> str:
    """The URL without its query and fragment (tokens live there): what alerts and names show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the URL"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers as the API shows them: credentials as ``***``."""
    return {k: "***" if _SECRET_HEADER.search(k) else v for k, v in headers.items()}


def _seconds(fields: Mapping[str, Any], name: str, default: float | None, low: float, high: float) -> float | None:
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, "must be a number of seconds")
    if not low <= value <= high:
        raise ConfigError(name, f"must be from {low:g} to {high:g} seconds; got {value:g}")
    return float(value)


def _text(fields: Mapping[str, Any], name: str, *, max_len: int = MAX_TEXT, empty_ok: bool = False) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, "must be a string")
    if not value and not empty_ok:
        raise ConfigError(name, "must not be empty")
    if "\x00" in value:
        raise ConfigError(name, "contains a NUL character (\\u0000), which cannot be stored")
    if len(value) > max_len:
        raise ConfigError(name, f"is longer than {max_len} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(name, "is not valid UTF-8") from None
    return value


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigError("headers", 'must be an object of names to values, e.g. {"Accept": "application/json"}')
    if len(value) > MAX_HEADERS:
        raise ConfigError("headers", f"may hold at most {MAX_HEADERS} headers")
    out = []
    seen: set[str] = set()
    for name, text in value.items():
        if not _TOKEN.match(name):
            raise ConfigError("headers", f"{name!r} is not a valid header name")
        if name.lower() in _MANAGED_HEADERS:
            raise ConfigError("headers", f"{name} is set by the HTTP client; it cannot be sent by hand")
        if name.lower() in seen:
            raise ConfigError("headers", f"{name} is given twice")
        seen.add(name.lower())
        if not isinstance(text, str):
            raise ConfigError("headers", f"the value of {name} must be a string")
        if any(c in text for c in "\r\n\x00") or len(text) > MAX_HEADER_VALUE or not text.isprintable():
            raise ConfigError(
                "headers", f"the value of {name} must be printable text of at most {MAX_HEADER_VALUE} characters"
            )
        out.append((name, text))
    return tuple(out)


def _statuses(value: Any) -> tuple[int, ...]:
    if value is None:
        return DEFAULT_STATUS
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > 20:
        raise ConfigError("expected_status", "must be a status code or a list of 1 to 20 of them")
    for code in items:
        if type(code) is not int or not 100 <= code <= 599:
            raise ConfigError("expected_status", f"must hold HTTP status codes from 100 to 599; got {code!r}")
    return tuple(sorted(set(items)))


def _json_value_problem(value: Any, depth: int) -> str | None:
    """Why Postgres (jsonb) could not store ``value``, or None: a NUL in a string or a key, or
    nesting past MAX_JSON_DEPTH (a form's text is parsed without the request body's bound)."""
    if depth > MAX_JSON_DEPTH:
        return f"is nested more than {MAX_JSON_DEPTH} levels deep"
    if isinstance(value, str):
        return "contains a NUL character (\\u0000), which cannot be stored" if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        problem = _json_value_problem(item, depth + 1)
        if problem is not None:
            return problem
    return None


def parse_config(fields: Mapping[str, Any], limits: Limits) -> Config:
    """The probe's settings from ``fields`` (a POST's body, or a PATCH's over the stored config;
    null or absent means the default), each checked; ConfigError names the first bad field."""
    if fields.get("url") is None:
        raise ConfigError("url", "is required: the http(s) URL to probe")
    url = _text(fields, "url", max_len=MAX_URL)
    assert url is not None
    problem = check_url(url, limits.allow)
    if problem is not None:
        raise ConfigError("url", problem)
    method = fields.get("method") or DEFAULT_METHOD
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ConfigError("method", f"must be one of {', '.join(METHODS)}")
    method = method.upper()
    headers = _headers(fields.get("headers"))
    body = _text(fields, "body", max_len=MAX_REQUEST_BODY, empty_ok=True)
    if body is not None and method == "HEAD":
        raise ConfigError("body", "cannot be sent with HEAD; choose another method")
    interval = _seconds(fields, "interval", DEFAULT_INTERVAL, limits.min_interval, MAX_INTERVAL)
    assert interval is not None
    request_timeout = _seconds(fields, "request_timeout", min(DEFAULT_REQUEST_TIMEOUT, interval), 0.01, interval)
    assert request_timeout is not None
    timeout = _seconds(fields, "timeout", max(DEFAULT_TIMEOUT, limits.min_timeout), limits.min_timeout, MAX_TIMEOUT)
    assert timeout is not None
    expected = _statuses(fields.get("expected_status"))
    location = _text(fields, "expected_location", max_len=MAX_URL)
    if location is not None and not all(300 <= s < 400 for s in expected):
        raise ConfigError("expected_location", "applies to a redirect: set expected_status to a 3xx code")
    header_name = _text(fields, "header_name", max_len=200)
    header_contains = _text(fields, "header_contains", empty_ok=True)
    if header_name is not None and not _TOKEN.match(header_name):
        raise ConfigError("header_name", f"{header_name!r} is not a valid header name")
    if (header_name is None) != (header_contains is None):
        missing = "header_contains" if header_contains is None else "header_name"
        raise ConfigError(missing, "is required with the other: a header (header_name) must contain header_contains")
    body_contains = _text(fields, "body_contains")
    body_regex = _text(fields, "body_regex")
    if body_regex is not None:
        try:
            compiled_regex(body_regex)
        except regex.error as exc:
            raise ConfigError("body_regex", f"is not a valid regular expression: {exc}") from None
        except RecursionError:  # the compiler recurses per group: ~500 nested ones exhaust the stack
            raise ConfigError("body_regex", "is nested too deeply to compile") from None
    json_path = _text(fields, "json_path")
    json_equals = fields.get("json_equals")
    if json_path is not None:
        try:
            parse_json_path(json_path)
        except ValueError as exc:
            raise ConfigError("json_path", f"is not a valid JSON path: {exc}") from None
        if "json_equals" not in fields:
            raise ConfigError("json_equals", "is required with json_path: the value the path must equal")
        problem = _json_value_problem(json_equals, 0)
        if problem is not None:
            raise ConfigError("json_equals", problem)
        if len(orjson.dumps(json_equals)) > MAX_TEXT:
            raise ConfigError("json_equals", f"is longer than {MAX_TEXT} bytes as JSON")
    elif fields.get("json_equals") is not None:
        raise ConfigError("json_path", "is required with json_equals: where in the JSON body to look")
    if method == "HEAD":
        for name, value in (("body_contains", body_contains), ("body_regex", body_regex), ("json_path", json_path)):
            if value is not None:
                raise ConfigError(name, "needs a response body, which HEAD does not get: set method to GET")
    max_latency = _seconds(fields, "max_latency", None, 0.001, request_timeout)
    return Config(
        url=url,
        method=method,
        headers=headers,
        body=body,
        interval=interval,
        request_timeout=request_timeout,
        timeout=timeout,
        expected_status=expected,
        expected_location=location,
        header_name=header_name,
        header_contains=header_contains,
        body_contains=body_contains,
        body_regex=body_regex,
        json_path=json_path,
        json_equals=json_equals if json_path is not None else None,
        max_latency=max_latency,
    )


# -- JSON paths: $.a.b[0]['c d'] ------------------------------------------------------------------

_PATH_PART = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(-?\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]""")


@lru_cache(maxsize=4096)
def parse_json_path(path: str) -> tuple[str | int, ...]:
    """The steps of a JSON path: ``$`` then ``.name``, ``[index]`` or ``['any name']``. ``a.b``
    and ``[0]`` are read as ``$.a.b`` and ``$[0]``. ValueError says what is wrong."""
    text = path.strip()
    if not text:
        raise ValueError("it is empty")
    if not text.startswith("$"):
        text = "$" + (text if text.startswith("[") else "." + text)
    steps: list[str | int] = []
    at = 1
    while at < len(text):
        m = _PATH_PART.match(text, at)
        if m is None:
            raise ValueError(f"cannot read {text[at : at + 20]!r} (use .name, [0] or ['name'])")
        name, index, single, double = m.groups()
        if index is not None:
            steps.append(int(index))
        else:
            quoted = single if single is not None else double
            steps.append(name if name is not None else re.sub(r"\\(.)", r"\1", quoted or ""))
        at = m.end()
    return tuple(steps)


_MISSING = object()


def json_lookup(document: Any, steps: Iterable[str | int]) -> Any:
    """The value at ``steps``, or ``_MISSING``."""
    value = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return _MISSING
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return _MISSING
            value = value[step]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1`` equals ``1.0``, but ``true`` is not ``1`` and ``"1"`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@lru_cache(maxsize=4096)
def compiled_regex(pattern: str) -> Any:
    return regex.compile(pattern)


# -- the verdict ----------------------------------------------------------------------------------


def seconds_text(seconds: float) -> str:
    """``250 ms``, ``1.5 s``, ``10 s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))} ms"
    return f"{seconds:.3g} s" if seconds < 100 else f"{round(seconds)} s"


def _quoted(text: str, limit: int = 100) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass(frozen=True)
class Response:
    """What came back: the status, the headers as received, the body read (None for HEAD) and
    whether it was cut at MAX_BODY_BYTES, and the time from start to the end of the body."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    total: float = 0.0
    charset: str | None = None
    truncated: bool = False

    def header(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    def text(self) -> str:
        raw = self.body or b""
        try:
            return raw.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return raw.decode("utf-8", errors="replace")


def _expected_text(codes: tuple[int, ...]) -> str:
    return " or ".join(str(c) for c in codes) if len(codes) <= 4 else f"one of {', '.join(map(str, codes))}"


def evaluate(config: Config, response: Response) -> str | None:
    """None if ``response`` is up by ``config``'s rules, else why it is down (the first rule it breaks)."""
    status = response.status
    if status not in config.expected_status:
        reason = f"status {status} (expected {_expected_text(config.expected_status)})"
        location = response.header("Location")
        if 300 <= status < 400 and location:
            reason += f", redirecting to {shown_url(location[0]) if '://' in location[0] else location[0][:200]}"
        return reason
    if config.expected_location is not None:
        location = response.header("Location")
        if not location:
            return f"status {status} without a Location header (expected {_quoted(config.expected_location)})"
        if location[0] != config.expected_location:
            return f"redirects to {_quoted(location[0])} (expected {_quoted(config.expected_location)})"
    if config.header_name is not None and config.header_contains is not None:
        values = response.header(config.header_name)
        if not values:
            return f"no {config.header_name} header"
        if not any(config.header_contains in v for v in values):
            return f"{config.header_name} is {_quoted(values[0])}, without {_quoted(config.header_contains)}"
    cut = f" (in the first {MAX_BODY_BYTES // 1024} KiB read)" if response.truncated else ""
    if config.body_contains is not None or config.body_regex is not None:
        text = response.text()
        if config.body_contains is not None and config.body_contains not in text:
            return f"body does not contain {_quoted(config.body_contains)}{cut}"
        if config.body_regex is not None:
            try:
                found = compiled_regex(config.body_regex).search(text, timeout=REGEX_TIMEOUT)
            except TimeoutError:
                return f"body regex /{config.body_regex[:100]}/ ran longer than {seconds_text(REGEX_TIMEOUT)}"
            if found is None:
                return f"body does not match /{config.body_regex[:100]}/{cut}"
    if config.json_path is not None:
        if response.truncated:
            return f"body is larger than {MAX_BODY_BYTES // 1024} KiB: not read as JSON"
        try:
            document = orjson.loads(response.body or b"")
        except orjson.JSONDecodeError:
            return "body is not JSON"
        value = json_lookup(document, parse_json_path(config.json_path))
        expected = orjson.dumps(config.json_equals).decode()
        if value is _MISSING:
            return f"{config.json_path} is not in the body (expected {expected[:100]})"
        if not json_equal(value, config.json_equals):
            return f"{config.json_path} is {orjson.dumps(value).decode()[:100]} (expected {expected[:100]})"
    if config.max_latency is not None and response.total > config.max_latency:
        return f"slow: answered in {seconds_text(response.total)} (max {seconds_text(config.max_latency)})"
    return None


_PHASE_NAMES = {"dns": "DNS lookup", "connect": "TCP connect", "tls": "TLS handshake"}


def timed_out(phase: str, elapsed: float) -> str:
    """Why a request that ran out of time is down, by the phase it was in."""
    if phase in _PHASE_NAMES:
        return f"{_PHASE_NAMES[phase]} timed out after {seconds_text(elapsed)}"
    if phase == "body":
        return f"body not received in full within {seconds_text(elapsed)}"
    return f"no response within {seconds_text(elapsed)}"


def timings_text(timings: Mapping[str, Any]) -> str:
    """``total 1.2 s (DNS 3 ms, connect 1 ms, TLS 40 ms, first byte 1.1 s)``: the phases measured."""
    names = {"dns": "DNS", "connect": "connect", "tls": "TLS", "first_byte": "first byte"}
    parts = [f"{label} {seconds_text(timings[k])}" for k, label in names.items() if timings.get(k) is not None]
    total = timings.get("total")
    head = f"total {seconds_text(total)}" if total is not None else "no timing"
    return f"{head} ({', '.join(parts)})" if parts else head


# -- the state machine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One probe run, as the prober reports it: when it started, up or not, and what it saw."""

    at: float
    up: bool
    status: int | None = None
    reason: str | None = None
    timings: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    state: str = NEW
    last_at: float | None = None  # the start of the newest result applied
    last_up: bool | None = None
    last_status: int | None = None
    last_reason: str | None = None
    last_timings: Mapping[str, float | None] | None = None
    down_since: float | None = None  # the first down result of the current run of them
    failures: int = 0  # down results in that run

    def data(self) -> dict[str, Any]:
        """What the detector keeps in ``monitors.data`` (the state has its own column)."""
        return {
            "last_at": self.last_at,
            "last_up": self.last_up,
            "last_status": self.last_status,
            "last_reason": self.last_reason,
            "last_timings": dict(self.last_timings) if self.last_timings is not None else None,
            "down_since": self.down_since,
            "failures": self.failures,
        }

    @classmethod
    def load(cls, state: str, data: Mapping[str, Any]) -> Probe:
        return cls(
            state,
            data.get("last_at"),
            data.get("last_up"),
            data.get("last_status"),
            data.get("last_reason"),
            data.get("last_timings"),
            data.get("down_since"),
            int(data.get("failures") or 0),
        )


def max_gap(config: Config) -> float:
    """The longest time between two results that still counts as watching continuously: one
    result may go missing (a lost message, a prober restarting), two may not."""
    return 2 * config.interval + config.request_timeout


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _span(seconds: float) -> str:
    if seconds < 120:
        return seconds_text(seconds)
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.3g} h"


def details(config: Config, probe: Probe, result: Result) -> dict[str, Any]:
    """What the incident carries: the reason and timings of the last result, since when it fails."""
    since = probe.down_since if probe.down_since is not None else result.at
    timings = dict(result.timings)
    reason = result.reason or "down"
    checks = "1 failed check" if probe.failures == 1 else f"{probe.failures} failed checks"
    return {
        "url": shown_url(config.url),
        "method": config.method,
        "reason": reason,
        "status": result.status,
        "timings": timings,
        "down_since": iso(since),
        "failures": probe.failures,
        "summary": f"{reason}; {checks} over {_span(result.at - since)}; {timings_text(timings)}",
    }


def observe(probe: Probe, config: Config, result: Result) -> tuple[Probe, list[Flip]]:
    """Fold one result into the probe (see the module's docstring for the states)."""
    if probe.last_at is not None and result.at <= probe.last_at:
        return probe, []  # older than what is known: overtaken
    seen = replace(
        probe,
        last_at=result.at,
        last_up=result.up,
        last_status=result.status,
        last_reason=result.reason,
        last_timings=dict(result.timings),
    )
    if probe.state == PAUSED:
        return replace(seen, down_since=None, failures=0), []
    if result.up:
        after = replace(seen, state=UP, down_since=None, failures=0)
        if probe.state == DOWN:
            since = probe.down_since
            flip = Flip(DOWN, UP, result.at, "up again", RESOLVE, silent_since=since, resumed_at=result.at)
            return after, [flip]
        if probe.state == FAILING:
            span = _span(result.at - probe.down_since) if probe.down_since is not None else "a while"
            return after, [Flip(FAILING, UP, result.at, f"up again after failing for {span}, within its timeout")]
        if probe.state == NEW:
            return after, [Flip(NEW, UP, result.at, "first result: up")]
        return after, []
    reason = result.reason or "down"
    if probe.state == DOWN:
        return replace(seen, failures=probe.failures + 1), []
    flips: list[Flip] = []
    continuing = (
        probe.state == FAILING
        and probe.down_since is not None
        and probe.last_at is not None
        and result.at - probe.last_at <= max_gap(config)
    )
    if continuing:
        failing = replace(seen, failures=probe.failures + 1)
    else:
        failing = replace(seen, state=FAILING, down_since=result.at, failures=1)
        if probe.state != FAILING:
            flips.append(Flip(probe.state, FAILING, result.at, f"failing: {reason}"))
    assert failing.down_since is not None
    if result.at - failing.down_since >= config.timeout:
        span = _span(result.at - failing.down_since)
        down = replace(failing, state=DOWN)
        flips.append(
            Flip(
                FAILING,
                DOWN,
                result.at,
                f"down for {span}: {reason}",
                OPEN,
                silent_since=failing.down_since,
                details=details(config, failing, result),
            )
        )
        return down, flips
    return failing, flips


def resume(probe: Probe, at: float, *, incident_open: bool) -> tuple[Probe, Flip]:
    """Back from paused: ``down`` while its incident is open (the next up result resolves it), else
    ``new``; the time paused is not held against it either way."""
    state = DOWN if incident_open else NEW
    resumed = replace(probe, state=state, down_since=probe.down_since if incident_open else None)
    if not incident_open:
        resumed = replace(resumed, failures=0)
    return resumed, Flip(PAUSED, state, at, "resumed")
