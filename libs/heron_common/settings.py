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


# A signing secret shorter than this is guessable offline from one signed cookie.
MIN_SECRET_LENGTH = 32


def _min_secret(env: Mapping[str, str], name: str) -> str | None:
    value = _secret(env, name)
    if not value:
        return None
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"{name} must be at least {MIN_SECRET_LENGTH} characters (e.g. the output of `openssl rand -hex 32`)"
        )
    return value


def _secrets_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    from heron_common.secretbox import SecretsKeyError, parse_keys

    try:
        return parse_keys(_secret(env, "HERON_SECRETS_KEY"))
    except SecretsKeyError as exc:
        raise SettingsError(str(exc)) from None


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


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    values = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if raw not in values:
        raise SettingsError(f"{name} must be true or false")
    return values[raw]


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = _secret(env, name) or default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise SettingsError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    """An optional http(s) URL, which may carry a token (so it has a _FILE variant too)."""
    value = _secret(env, name)
    if not value:
        return None
    return _url({name: value}, name, value, ("https", "http"))


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


# Settings that are credentials: never logged, shown as *** by Settings.public().
SECRET_FIELDS = frozenset(
    {
        "admin_token",
        "heroku_api_key",
        "slack_bot_token",
        "slack_signing_secret",
        "session_secret",
        "badge_secret",
        "secrets_keys",
        "smtp_password",
    }
)


def _check_heroku_seed(settings: Settings) -> None:
    """MONITORED_APP_NAME and SLACK_CHANNEL seed a monitor together, checked as the API checks one."""
    from heron_common.monitors import heroku

    app, channel = settings.heroku_seed_app, settings.heroku_seed_channel
    if app is None and channel is None:
        return
    if app is None or channel is None:
        raise SettingsError("MONITORED_APP_NAME and SLACK_CHANNEL seed the first Heroku monitor together: set both")
    try:
        heroku.parse_config(
            {"app_name": app, "slack_channel": channel, "check_interval": settings.heroku_seed_interval}
        )
    except heroku.ConfigError as exc:
        name = {"app_name": "MONITORED_APP_NAME", "slack_channel": "SLACK_CHANNEL"}.get(exc.field, exc.field)
        raise SettingsError(f"{name}: {exc.message}") from None


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
    # Fernet keys sealing secrets at rest (secretbox.py): newest first; required by ingest and the
    # notifier, which store and use webhook signing secrets.
    secrets_keys: tuple[str, ...] = field(default=(), repr=False)
    # Signs dashboard sessions and CSRF tokens (and, unless badge_secret is set, badge URLs).
    # Unset: each ingest process makes its own at start (with a warning), so sessions end with it.
    session_secret: str | None = field(default=None, repr=False)
    # Signs the unguessable read-only status-badge URLs; set it to rotate the session secret
    # without changing the badge URLs pasted into READMEs.
    badge_secret: str | None = field(default=None, repr=False)

    # HTTP listeners (each service serves /healthz, /readyz and /metrics on its port).
    http_host: str = "0.0.0.0"
    ingest_port: int = 8080
    detector_port: int = 8081
    notifier_port: int = 8082
    prober_port: int = 8083
    # /healthz fails once a consumer has been unsubscribed this long while the broker is reachable.
    consumer_stuck_seconds: float = 120.0

    # Ingest.
    max_body_bytes: int = 1_048_576
    # The longest request line (so the query string) and header line ingest reads: longer is 400.
    max_header_bytes: int = 8190
    max_batch_events: int = 1000
    max_metadata_bytes: int = 8192
    max_json_depth: int = 32  # containers nested in a request body or an event's metadata
    key_cache_seconds: float = 10.0
    body_read_timeout: float = 10.0
    # Rate limits (requests/s and burst; 0 turns one off), shared by every replica through Redis.
    rate_limit_per_key: float = 1000.0
    rate_limit_per_key_burst: int = 2000
    rate_limit_per_address: float = 1000.0
    rate_limit_per_address_burst: int = 2000
    # Proxies in front of ingest that append the client's address to X-Forwarded-For (0: none,
    # the peer address is the client's).
    trusted_proxy_hops: int = 0
    # What one project may declare (exceeding one answers 422 limit_reached naming the setting).
    max_webhooks_per_project: int = 50
    max_heartbeats_per_project: int = 1000
    max_triggers_per_project: int = 1000
    max_probes_per_project: int = 1000

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

    # HTTP probes (the prober). The minimums bound what the API accepts; tests shrink them to
    # fractions of a second. Jitter is the fraction of the interval each step moves by at random.
    probe_min_interval: float = 60.0
    probe_min_timeout: float = 180.0
    probe_concurrency: int = 500
    probe_poll_interval: float = 0.5
    probe_jitter: float = 0.05
    # Heroku app monitoring and the Slack bot (docs/architecture.md, "Heroku apps"). The PRD's own
    # variables keep their names (HEROKU_API_KEY, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, each with
    # a _FILE variant; MONITORED_APP_NAME, SLACK_CHANNEL, CHECK_INTERVAL_MINUTES seed the first
    # monitor once); Heron's own are HERON_HEROKU_* / HERON_SLACK_*.
    heroku_api_key: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    heroku_api_url: str = "https://api.heroku.com"
    slack_api_url: str = "https://slack.com/api"
    heroku_seed_app: str | None = None
    heroku_seed_channel: str | None = None
    heroku_seed_interval: int = 5  # minutes
    # The project the seeded monitor belongs to and /heroku-status answers for: an id or a name
    # (None: the first project).
    heroku_project: str | None = None
    # How long one check_interval minute is: 60 s; tests and demos shrink it.
    heroku_minute: float = 60.0
    heroku_poll_interval: float = 1.0  # how often a prober looks for apps due a check
    heroku_timeout: float = 10.0  # per Heroku API request
    heroku_concurrency: int = 4  # apps one prober checks at once
    heroku_rate_reserve: int = 50  # RateLimit-Remaining below this: pause every check for a while
    heroku_backoff: float = 60.0  # first wait after a 429 without Retry-After (doubles, ≤ 15 min)
    # On-call (issue #11, docs/oncall.md): pages, acknowledge links, shifts.
    # Where people reach ingest: acknowledge links in pages start with it.
    public_url: str = "http://localhost:8080"
    smtp_host: str | None = None  # None: email channels fail (and say so) until it is set
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "heron@localhost"
    smtp_starttls: bool = True
    oncall_min_repeat: float = 60.0  # the shortest repeat interval a rotation accepts
    shift_horizon_days: int = 14  # shifts are generated at least this far ahead
    shift_topup_interval: float = 3600.0
    paging_interval: float = 1.0  # how often the notifier looks for pages due and steps to plan
    paging_horizon: float = 60.0  # how far ahead steps are written to the ledger
    paging_concurrency: int = 64
    page_retry_schedule: tuple[float, ...] = (0.0, 5.0, 30.0, 120.0)
    # Heron watching itself (issue #14, libs/heron_common/selfwatch.py; run by the notifier).
    # A dead-man's switch pinged only while the pipeline moves; where to say it stalled (a Slack
    # incoming webhook or any URL taking JSON). Both optional, both may carry a token (_FILE too).
    self_heartbeat_url: str | None = field(default=None, repr=False)
    self_heartbeat_interval: float = 60.0
    self_alert_url: str | None = field(default=None, repr=False)
    self_watch_interval: float = 10.0
    self_watermark_max_age: float = 120.0
    self_queue_max_depth: int = 100_000
    self_confirm_after: float = 30.0  # problems must last this long to be a stall (a restart is not)
    ack_link_ttl: float = 86400.0

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
            secrets_keys=_secrets_keys(env),
            session_secret=_min_secret(env, "HERON_SESSION_SECRET"),
            badge_secret=_min_secret(env, "HERON_BADGE_SECRET"),
            http_host=env.get("HERON_HTTP_HOST", d.http_host),
            ingest_port=_int(env, "HERON_INGEST_PORT", d.ingest_port, maximum=65535),
            detector_port=_int(env, "HERON_DETECTOR_PORT", d.detector_port, maximum=65535),
            notifier_port=_int(env, "HERON_NOTIFIER_PORT", d.notifier_port, maximum=65535),
            prober_port=_int(env, "HERON_PROBER_PORT", d.prober_port, maximum=65535),
            consumer_stuck_seconds=_float(env, "HERON_CONSUMER_STUCK_SECONDS", d.consumer_stuck_seconds, minimum=0.1),
            max_body_bytes=_int(env, "HERON_MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
            max_header_bytes=_int(env, "HERON_MAX_HEADER_BYTES", d.max_header_bytes, minimum=1024),
            max_batch_events=_int(env, "HERON_MAX_BATCH_EVENTS", d.max_batch_events, minimum=1),
            max_metadata_bytes=_int(env, "HERON_MAX_METADATA_BYTES", d.max_metadata_bytes, minimum=2),
            # At most 200: the broker message wraps metadata, and orjson encodes 255 levels at most.
            max_json_depth=_int(env, "HERON_MAX_JSON_DEPTH", d.max_json_depth, minimum=2, maximum=200),
            key_cache_seconds=_float(env, "HERON_KEY_CACHE_SECONDS", d.key_cache_seconds),
            body_read_timeout=_float(env, "HERON_BODY_READ_TIMEOUT", d.body_read_timeout, minimum=0.01),
            rate_limit_per_key=_float(env, "HERON_RATE_LIMIT_PER_KEY", d.rate_limit_per_key),
            rate_limit_per_key_burst=_int(env, "HERON_RATE_LIMIT_PER_KEY_BURST", d.rate_limit_per_key_burst, minimum=1),
            rate_limit_per_address=_float(env, "HERON_RATE_LIMIT_PER_ADDRESS", d.rate_limit_per_address),
            rate_limit_per_address_burst=_int(
                env, "HERON_RATE_LIMIT_PER_ADDRESS_BURST", d.rate_limit_per_address_burst, minimum=1
            ),
            trusted_proxy_hops=_int(env, "HERON_TRUSTED_PROXY_HOPS", d.trusted_proxy_hops, maximum=10),
            max_webhooks_per_project=_int(env, "HERON_MAX_WEBHOOKS_PER_PROJECT", d.max_webhooks_per_project),
            max_heartbeats_per_project=_int(env, "HERON_MAX_HEARTBEATS_PER_PROJECT", d.max_heartbeats_per_project),
            max_triggers_per_project=_int(env, "HERON_MAX_TRIGGERS_PER_PROJECT", d.max_triggers_per_project),
            max_probes_per_project=_int(env, "HERON_MAX_PROBES_PER_PROJECT", d.max_probes_per_project),
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
            probe_min_interval=_float(env, "HERON_PROBE_MIN_INTERVAL", d.probe_min_interval, minimum=0.01),
            probe_min_timeout=_float(env, "HERON_PROBE_MIN_TIMEOUT", d.probe_min_timeout, minimum=0.01),
            probe_concurrency=_int(env, "HERON_PROBE_CONCURRENCY", d.probe_concurrency, minimum=1, maximum=20_000),
            probe_poll_interval=_float(env, "HERON_PROBE_POLL_INTERVAL", d.probe_poll_interval, minimum=0.01),
            probe_jitter=_float(env, "HERON_PROBE_JITTER", d.probe_jitter),
            heroku_api_key=_secret(env, "HEROKU_API_KEY") or None,
            slack_bot_token=_secret(env, "SLACK_BOT_TOKEN") or None,
            slack_signing_secret=_secret(env, "SLACK_SIGNING_SECRET") or None,
            heroku_api_url=_url(env, "HERON_HEROKU_API_URL", d.heroku_api_url, ("https", "http")).rstrip("/"),
            slack_api_url=_url(env, "HERON_SLACK_API_URL", d.slack_api_url, ("https", "http")).rstrip("/"),
            heroku_seed_app=env.get("MONITORED_APP_NAME") or None,
            heroku_seed_channel=env.get("SLACK_CHANNEL") or None,
            heroku_seed_interval=_int(env, "CHECK_INTERVAL_MINUTES", d.heroku_seed_interval, minimum=1, maximum=60),
            heroku_project=env.get("HERON_HEROKU_PROJECT") or None,
            heroku_minute=_float(env, "HERON_HEROKU_MINUTE", d.heroku_minute, minimum=0.01),
            heroku_poll_interval=_float(env, "HERON_HEROKU_POLL_INTERVAL", d.heroku_poll_interval, minimum=0.01),
            heroku_timeout=_float(env, "HERON_HEROKU_TIMEOUT", d.heroku_timeout, minimum=0.1),
            heroku_concurrency=_int(env, "HERON_HEROKU_CONCURRENCY", d.heroku_concurrency, minimum=1),
            heroku_rate_reserve=_int(env, "HERON_HEROKU_RATE_RESERVE", d.heroku_rate_reserve),
            heroku_backoff=_float(env, "HERON_HEROKU_BACKOFF", d.heroku_backoff, minimum=0.01),
            public_url=_url(env, "HERON_PUBLIC_URL", d.public_url, ("http", "https")).rstrip("/"),
            smtp_host=env.get("HERON_SMTP_HOST") or None,
            smtp_port=_int(env, "HERON_SMTP_PORT", d.smtp_port, minimum=1, maximum=65535),
            smtp_username=env.get("HERON_SMTP_USERNAME") or None,
            smtp_password=_secret(env, "HERON_SMTP_PASSWORD"),
            smtp_from=env.get("HERON_SMTP_FROM") or d.smtp_from,
            smtp_starttls=_bool(env, "HERON_SMTP_STARTTLS", d.smtp_starttls),
            oncall_min_repeat=_float(env, "HERON_ONCALL_MIN_REPEAT", d.oncall_min_repeat, minimum=0.01),
            shift_horizon_days=_int(env, "HERON_SHIFT_HORIZON_DAYS", d.shift_horizon_days, minimum=14, maximum=366),
            shift_topup_interval=_float(env, "HERON_SHIFT_TOPUP_INTERVAL", d.shift_topup_interval, minimum=0.01),
            paging_interval=_float(env, "HERON_PAGING_INTERVAL", d.paging_interval, minimum=0.01),
            self_heartbeat_url=_optional_url(env, "HERON_SELF_HEARTBEAT_URL"),
            self_heartbeat_interval=_float(
                env, "HERON_SELF_HEARTBEAT_INTERVAL", d.self_heartbeat_interval, minimum=0.01
            ),
            self_alert_url=_optional_url(env, "HERON_SELF_ALERT_URL"),
            self_watch_interval=_float(env, "HERON_SELF_WATCH_INTERVAL", d.self_watch_interval, minimum=0.01),
            self_watermark_max_age=_float(env, "HERON_SELF_WATERMARK_MAX_AGE", d.self_watermark_max_age, minimum=0.01),
            self_queue_max_depth=_int(env, "HERON_SELF_QUEUE_MAX_DEPTH", d.self_queue_max_depth, minimum=1),
            self_confirm_after=_float(env, "HERON_SELF_CONFIRM_AFTER", d.self_confirm_after),
            paging_horizon=_float(env, "HERON_PAGING_HORIZON", d.paging_horizon, minimum=1.0),
            paging_concurrency=_int(env, "HERON_PAGING_CONCURRENCY", d.paging_concurrency, minimum=1),
            page_retry_schedule=_schedule(env, "HERON_PAGE_RETRY_SCHEDULE", d.page_retry_schedule),
            ack_link_ttl=_float(env, "HERON_ACK_LINK_TTL", d.ack_link_ttl, minimum=1.0),
            log_level=env.get("HERON_LOG_LEVEL", d.log_level).upper(),
            log_json=log_json,
        )
        if settings.probe_jitter >= 0.5:
            raise SettingsError("HERON_PROBE_JITTER must be below 0.5 (a fraction of the interval, e.g. 0.05)")
        if settings.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("HERON_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
        _check_heroku_seed(settings)
        return replace(settings, **overrides) if overrides else settings

    def public(self) -> dict[str, Any]:
        """The settings safe to log: credentials in URLs and tokens are masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "***" if value else None
            elif f.name.endswith("_url") and isinstance(value, str) and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[f.name] = value
        return out
