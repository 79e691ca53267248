"""Settings from ``HERON_*`` environment variables, validated once at start-up.

Every service reads the same :class:`Settings`; a bad value stops the process at start with a
message that names the variable and says what it should be. Secrets also accept a ``_FILE``
variant (``HERON_ADMIN_TOKEN_FILE=/run/secrets/admin``) so they never have to sit in the
environment of a container.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _secret(env: Mapping[str, str], name: str) -> str | None:
    file_var = f"{name}_FILE"
    if file_var in env:
        path = env[file_var]
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise SettingsError(f"{file_var}={path!r} cannot be read: {exc.strerror}") from exc
    return env.get(name)


def _float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float = 0.0,
    above: float | None = None,
    maximum: float | None = None,
    infinite: bool = False,
) -> float:
    """A number from the environment: never NaN; ``inf`` only where ``infinite`` says it means
    something; at least ``minimum``, strictly more than ``above``, at most ``maximum`` if given."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number (e.g. {name}={default})") from None
    if math.isnan(value) or (math.isinf(value) and not infinite):
        raise SettingsError(f"{name}={raw!r} must be a finite number (e.g. {name}={default})")
    if value < minimum or (above is not None and value <= above):
        bound = f"more than {above}" if above is not None else f"at least {minimum}"
        raise SettingsError(f"{name}={raw!r} must be {bound}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={raw!r} must be at most {maximum:g}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number (e.g. {name}={default})") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}{upper}")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = _secret(env, name) or default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise SettingsError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def _schedule(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if not raw:
        return default
    try:
        schedule = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated seconds, e.g. 0,5,300,1800") from None
    if not schedule or any(delay < 0 for delay in schedule):
        raise SettingsError(f"{name} needs at least one delay, none negative")
    return schedule


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = env.get(name, "")
    nets = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not a CIDR block (e.g. 127.0.0.0/8,::1/128)") from None
    return tuple(nets)


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/heron"
    redis_url: str = "redis://127.0.0.1:6379/0"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefixes keep several Heron installs (or test runs) apart on shared servers.
    redis_prefix: str = "heron"
    amqp_prefix: str = "heron"
    shards: int = 16
    admin_token: str | None = field(default=None, repr=False)

    # HTTP listeners (each service serves /healthz, /readyz and /metrics on its port).
    http_host: str = "0.0.0.0"
    ingest_port: int = 8080
    detector_port: int = 8081
    notifier_port: int = 8082
    prober_port: int = 8083

    # Ingest.
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 1000
    max_metadata_bytes: int = 8192
    key_cache_seconds: float = 10.0
    body_read_timeout: float = 10.0

    # Detection timing: production defaults; tests and demos shrink them to seconds.
    learning_threshold: int = 3
    min_tolerance: float = 60.0
    # The rate model (docs/detection.md): false alarms a healthy stream may raise per year (a
    # monitor's sensitivity multiplies it), and how fast a young stream's evidence may grow
    # (clusters of events per hour watched; inf: no cap).
    false_alarms_per_year: float = 1.0
    young_clusters_per_hour: float = 10.0
    # The smallest interval, grace or timeout a declared monitor (heartbeat, trigger) accepts.
    min_interval: float = 60.0
    scan_interval: float = 1.0
    event_retention_days: int = 7
    max_clock_skew: float = 3600.0

    # Notifier.
    slack_retry_schedule: tuple[float, ...] = (0.0, 5.0, 30.0, 120.0, 600.0, 1800.0)
    # Webhooks: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    webhook_retry_schedule: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    webhook_secret_overlap: float = 86400.0
    endpoint_disable_after: float = 5 * 86400.0
    delivery_timeout: float = 15.0
    delivery_lease_margin: float = 10.0
    delivery_concurrency: int = 64
    endpoint_concurrency: int = 8
    delivery_poll_interval: float = 1.0
    delivery_retention_days: int = 30
    outbound_allow_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        log_json_raw = env.get("HERON_LOG_JSON", "").lower()
        log_json = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(log_json_raw)
        settings = cls(
            database_url=_url(env, "HERON_DATABASE_URL", d.database_url, ("postgresql", "postgres")),
            redis_url=_url(env, "HERON_REDIS_URL", d.redis_url, ("redis", "rediss", "unix")),
            amqp_url=_url(env, "HERON_AMQP_URL", d.amqp_url, ("amqp", "amqps")),
            redis_prefix=env.get("HERON_REDIS_PREFIX", d.redis_prefix),
            amqp_prefix=env.get("HERON_AMQP_PREFIX", d.amqp_prefix),
            shards=_int(env, "HERON_SHARDS", d.shards, minimum=1, maximum=1024),
            admin_token=_secret(env, "HERON_ADMIN_TOKEN"),
            http_host=env.get("HERON_HTTP_HOST", d.http_host),
            ingest_port=_int(env, "HERON_INGEST_PORT", d.ingest_port, maximum=65535),
            detector_port=_int(env, "HERON_DETECTOR_PORT", d.detector_port, maximum=65535),
            notifier_port=_int(env, "HERON_NOTIFIER_PORT", d.notifier_port, maximum=65535),
            prober_port=_int(env, "HERON_PROBER_PORT", d.prober_port, maximum=65535),
            max_body_bytes=_int(env, "HERON_MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
            max_batch_events=_int(env, "HERON_MAX_BATCH_EVENTS", d.max_batch_events, minimum=1),
            max_metadata_bytes=_int(env, "HERON_MAX_METADATA_BYTES", d.max_metadata_bytes, minimum=2),
            key_cache_seconds=_float(env, "HERON_KEY_CACHE_SECONDS", d.key_cache_seconds),
            body_read_timeout=_float(env, "HERON_BODY_READ_TIMEOUT", d.body_read_timeout, minimum=0.01),
            learning_threshold=_int(env, "HERON_LEARNING_THRESHOLD", d.learning_threshold, minimum=3),
            min_tolerance=_float(env, "HERON_MIN_TOLERANCE", d.min_tolerance, minimum=0.01),
            false_alarms_per_year=_float(
                env, "HERON_FALSE_ALARMS_PER_YEAR", d.false_alarms_per_year, above=0.0, maximum=1e15
            ),
            young_clusters_per_hour=_float(
                env, "HERON_YOUNG_CLUSTERS_PER_HOUR", d.young_clusters_per_hour, above=0.0, infinite=True
            ),
            min_interval=_float(env, "HERON_MIN_INTERVAL", d.min_interval, minimum=0.01),
            scan_interval=_float(env, "HERON_SCAN_INTERVAL", d.scan_interval, minimum=0.01),
            event_retention_days=_int(env, "HERON_EVENT_RETENTION_DAYS", d.event_retention_days, minimum=1),
            max_clock_skew=_float(env, "HERON_MAX_CLOCK_SKEW", d.max_clock_skew),
            slack_retry_schedule=_schedule(env, "HERON_SLACK_RETRY_SCHEDULE", d.slack_retry_schedule),
            webhook_retry_schedule=_schedule(env, "HERON_WEBHOOK_RETRY_SCHEDULE", d.webhook_retry_schedule),
            webhook_secret_overlap=_float(env, "HERON_WEBHOOK_SECRET_OVERLAP", d.webhook_secret_overlap),
            endpoint_disable_after=_float(env, "HERON_ENDPOINT_DISABLE_AFTER", d.endpoint_disable_after, minimum=1),
            delivery_timeout=_float(env, "HERON_DELIVERY_TIMEOUT", d.delivery_timeout, minimum=0.1),
            delivery_lease_margin=_float(env, "HERON_DELIVERY_LEASE_MARGIN", d.delivery_lease_margin, minimum=0.1),
            delivery_concurrency=_int(env, "HERON_DELIVERY_CONCURRENCY", d.delivery_concurrency, minimum=1),
            endpoint_concurrency=_int(env, "HERON_ENDPOINT_CONCURRENCY", d.endpoint_concurrency, minimum=1),
            delivery_retention_days=_int(env, "HERON_DELIVERY_RETENTION_DAYS", d.delivery_retention_days, minimum=1),
            delivery_poll_interval=_float(env, "HERON_DELIVERY_POLL_INTERVAL", d.delivery_poll_interval, minimum=0.01),
            outbound_allow_cidrs=_networks(env, "HERON_OUTBOUND_ALLOW_CIDRS"),
            log_level=env.get("HERON_LOG_LEVEL", d.log_level).upper(),
            log_json=log_json,
        )
        if settings.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("HERON_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
        return replace(settings, **overrides) if overrides else settings

    def public(self) -> dict[str, Any]:
        """The settings safe to log: credentials in URLs and tokens are masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "admin_token":
                value = "***" if value else None
            elif f.name.endswith("_url") and isinstance(value, str) and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[f.name] = value
        return out
