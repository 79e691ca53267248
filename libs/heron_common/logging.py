"""One logging pipeline per process: structlog's and the standard library's lines alike.

- ``get_logger`` returns structlog's lazy proxy, so a module-level ``log = get_logger(...)`` made
  at import time (before ``configure_logging``) uses whatever configuration is in force when it
  logs: redaction, rendering and level included. Nothing caches a logger on first use.
- Standard-library logging (aiohttp, asyncpg, aio_pika, aiormq) reaches the root handlers, whose
  ``ProcessorFormatter`` runs the same processors, redaction included: aiohttp's parse-error log
  echoes raw request lines, ``Authorization`` headers and all.
- Redaction works by key name (``api_key=…``, ``password=…``) and by value pattern on every string
  of the event, message and exception text included: Heron keys and admin tokens, webhook
  secrets, bearer credentials, passwords in URLs, and the path and query of http(s) URLs (webhook
  and Slack URLs carry their secret there), which are logged as ``scheme://host/***``.
- JSON off a terminal, readable lines on one. ``HERON_LOG_COPY`` (a file path) appends every line,
  as JSON, to that file too; the test suite scans it for secrets.

Loggers are bound with what a line is about (queue, message id, shard, project) at the call site,
so every line can be traced back to one message.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from typing import IO, Any

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

REDACTED = "***"

# Values under these keys (or keys containing them) are never logged, whatever they look like.
_SECRET_KEY_PARTS = ("api_key", "apikey", "admin_token", "authorization", "secret", "password", "token", "cookie")

_TOKEN = r"[^\s\\\"'&,;<>]+"  # a credential runs to whitespace, a quote, a separator or a repr escape
_B64 = r"[A-Za-z0-9+/]{16,}={0,2}"
# (pattern, replacement) in order: specific secrets first, then URL shapes.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![A-Za-z0-9_])heronadm_[A-Za-z0-9_-]+"), "heronadm_" + REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_])heron_[A-Za-z0-9_-]{40,}"), "heron_" + REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_])whsec_" + _B64), "whsec_" + REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_])sec_" + _B64), "sec_" + REDACTED),
    # Slack tokens (a bot's xoxb-…) and Heroku API keys (HRKU-…).
    (re.compile(r"(?<![A-Za-z0-9_])xox[abpors]-[A-Za-z0-9-]+"), "xox-" + REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_])HRKU-[A-Za-z0-9_-]+"), "HRKU-" + REDACTED),
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?" + _TOKEN), r"\1***"),
    (re.compile(r"(?i)\b(bearer)\s+" + _TOKEN), r"\1 ***"),
    (
        re.compile(
            r"(?i)(?<![a-z0-9])((?:api[_-]?key|admin_token|token|secret|password|passwd|pwd)[\"']?\s*[=:]\s*[\"']?)"
            + _TOKEN
        ),
        r"\1***",
    ),
    # scheme://user:password@ — amqp, postgres and redis URLs included (redis://:password@).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\\\"']*):[^@/\s\\\"']+@"), r"\1:***@"),
    # Outbound URLs carry secrets in their path and query (Slack webhooks, tokenised endpoints):
    # only scheme://host[:port] is kept.
    (re.compile(r"(?i)\b(https?://[^/?#\s\\\"'<>]+)[/?#][^\s\\\"'<>]*"), r"\1/***"),
)


# Every rule's match contains one of these: one search rules out most strings at once.
_TRIGGER = re.compile(r"(?i)heron(?:adm)?_|sec_|bearer|authori|key|token|secret|passw|pwd|://|xox|hrku-")


def redact_text(text: str) -> str:
    """``text`` with every secret-looking fragment replaced."""
    if not _TRIGGER.search(text):
        return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=1024)  # a program logs a few dozen distinct keys
def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def _redact_value(value: Any) -> Any:
    # Numbers and the like pass untouched, so redaction costs nothing for most fields.
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "backslashreplace"))
    # Anything else (an exception, a URL object) would be rendered by its repr: redact that.
    return redact_text(repr(value))


def _redact_item(key: object, value: Any) -> Any:
    # Secrets are strings (or hold them); a number under a name like ``tokens`` is left alone.
    if isinstance(key, str) and _is_secret_key(key) and isinstance(value, str | bytes | dict | list | tuple):
        return REDACTED
    return _redact_value(value)


def redact(_: object, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret keys and secret-looking values everywhere in the event."""
    for key, value in event_dict.items():
        if key.startswith("_") or key == "timestamp":  # ProcessorFormatter's _record; ours
            continue
        event_dict[key] = _redact_item(key, value)
    return event_dict


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (pytest swaps it per test)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


class _AppendHandler(logging.Handler):
    """Appends each line with one ``write`` on an O_APPEND descriptor, so several processes can
    share one file without interleaving their lines."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            os.write(self.fd, (self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        os.close(self.fd)
        super().close()


class _LoggerFactory:
    """The stdlib logger behind a structlog logger, at the configured level (the lazy proxy calls
    this on every line, so only a change of level costs a ``setLevel``)."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(self, name: str) -> logging.Logger:
        logger = logging.getLogger(name)
        if logger.level != self.level:
            logger.setLevel(self.level)
        return logger


_installed: list[logging.Handler] = []


def configure_logging(
    level: str = "INFO",
    json: bool | None = None,
    *,
    stream: IO[str] | None = None,
    copy_path: str | None = None,
) -> None:
    """Set up (or replace) the process's pipeline. ``stream`` defaults to the current
    ``sys.stderr``; ``copy_path`` to ``HERON_LOG_COPY``."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    if json is None:
        json = not (stream or sys.stderr).isatty()
    if copy_path is None:
        copy_path = os.environ.get("HERON_LOG_COPY") or None
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,  # last: sees the exception text and the message as they will be written
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_LoggerFactory(numeric),
        cache_logger_on_first_use=False,
    )

    def formatter(renderer: Processor) -> logging.Formatter:
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )

    main: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    main.setFormatter(formatter(structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()))
    handlers = [main]
    if copy_path:
        copy = _AppendHandler(copy_path)
        copy.setFormatter(formatter(structlog.processors.JSONRenderer()))
        handlers.append(copy)

    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = handlers
    for handler in handlers:
        root.addHandler(handler)
    # Libraries' own INFO and DEBUG are noise: they stay at WARNING unless the level is higher.
    # Our loggers get the configured level from the factory below.
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(name: str, **bound: object) -> FilteringBoundLogger:
    # The lazy proxy assembles the logger from the configuration in force at each call.
    # (``name`` reaches the stdlib logger factory; add_logger_name puts it in the line.)
    logger: FilteringBoundLogger = structlog.get_logger(name, **bound)
    return logger
