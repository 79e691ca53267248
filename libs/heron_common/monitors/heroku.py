"""The ``heroku`` kind: a Heroku app watched through the Platform API, pure.

The prober reads the app every ``check_interval`` minutes and sends a *snapshot* (dynos, newest
release, a hash of the config vars, add-ons) or an *error* (Heroku refused the key, no such app).
The detector folds each into the monitor with :func:`observe`, which compares the snapshot with the
previous one and says what to tell people:

- dynos newly ``crashed`` → ``heroku.dyno_crashed`` (🚨 *ALERT: Dyno Crash Detected* 🚨);
- dynos newly ``down`` → ``heroku.dynos_down`` (⚠️ *WARNING: Dynos Down* ⚠️);
- add-ons leaving ``provisioned`` → ``heroku.addon_changed``;
- problems cleared (dynos back ``up``, add-ons provisioned again, or gone) → ``heroku.recovered``;
- a newer release with another slug (code deployed, or rolled back) → ``heroku.deploy`` (🚀);
  releases that only set config vars or attach add-ons keep the slug and are not deploys;
- another config-vars hash → ``heroku.config_changed`` (⚙️);
- an error the first time it is seen → ``heroku.error``.

States: ``new`` (never checked), ``up`` (no problem), ``down`` (crashed/down dynos or add-ons not
provisioned: an incident is open), ``error`` (cannot be checked: no alert about the app, the error
is shown), and the shared ``paused``. The incident opens when the first problem appears and
resolves when the last one clears; each problem is told once (a dyno that stays crashed is not
told again), and a snapshot older than the last one applied changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from heron_common.monitors import OPEN, PAUSED, RESOLVE, Flip

KIND = "heroku"
NEW, UP, DOWN, ERROR = "new", "up", "down", "error"

MIN_INTERVAL, MAX_INTERVAL, DEFAULT_INTERVAL = 1, 60, 5  # minutes
CONFIG_FIELDS = ("app_name", "slack_channel", "check_interval")

# Heroku's rule for app names: 3-30 characters, lowercase letters, digits and dashes, starting with
# a letter and not ending with a dash. Also what keeps the name safe inside an API path.
APP_NAME = re.compile(r"[a-z][a-z0-9-]{1,28}[a-z0-9]\Z")
# A Slack channel by name: '#', then what Slack allows in a name (lowercase, no spaces, ≤ 80).
CHANNEL = re.compile(r"#[^\s\x00-\x1f\x7fA-Z#,@<>&|]{1,80}\Z")

# Dyno states (Heroku: crashed, down, idle, starting, up) that are problems, and add-on states
# that are not.
PROBLEM_DYNO_STATES = ("crashed", "down")
HEALTHY_DYNO_STATES = ("up", "idle")
FINE_ADDON_STATES = ("provisioned", "provisioning")

# The kind's own topics: each is one Slack message in the app's channel.
CRASHED = "heroku.dyno_crashed"
DYNOS_DOWN = "heroku.dynos_down"
ADDON = "heroku.addon_changed"
RECOVERED = "heroku.recovered"
DEPLOY = "heroku.deploy"
CONFIG = "heroku.config_changed"
ERRORED = "heroku.error"
TOPICS = (CRASHED, DYNOS_DOWN, ADDON, RECOVERED, DEPLOY, CONFIG, ERRORED)

# Error codes of an observation: the first three are the app's configuration (bad key, no such app).
UNAUTHORIZED, FORBIDDEN, NOT_FOUND = "unauthorized", "forbidden", "not_found"
UNAVAILABLE, NO_KEY = "unavailable", "no_key"  # Heroku unreachable; HEROKU_API_KEY not set
ERROR_CODES = (UNAUTHORIZED, FORBIDDEN, NOT_FOUND, UNAVAILABLE, NO_KEY)


class ConfigError(ValueError):
    """A field of a Heroku monitor's configuration is missing or wrong; ``field`` names it."""

    def __init__(self, field_name: str, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message
        self.missing = missing
        # Every bad field's message when several were checked at once (parse_config sets it).
        self.errors: dict[str, str] = {field_name: message}


@dataclass(frozen=True, slots=True)
class Config:
    app_name: str
    slack_channel: str
    check_interval: int = DEFAULT_INTERVAL  # minutes

    def to_dict(self) -> dict[str, Any]:
        return {"app_name": self.app_name, "slack_channel": self.slack_channel, "check_interval": self.check_interval}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Config:
        return cls(str(raw["app_name"]), str(raw["slack_channel"]), int(raw.get("check_interval", DEFAULT_INTERVAL)))


def _interval(raw: Any) -> int:
    """Minutes from JSON (an integer) or a form (ASCII digits)."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw.strip()) <= 4:
        value = int(raw.strip())
    if value is None or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ConfigError(
            "check_interval", f"check_interval must be a whole number of minutes from {MIN_INTERVAL} to {MAX_INTERVAL}"
        )
    return value


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigError(name, f"{name} is required", missing=True)
    if not isinstance(value, str):
        raise ConfigError(name, f"{name} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(name, f"{name} is not valid UTF-8") from None
    return value.strip()


def _app_name(merged: Mapping[str, Any]) -> str:
    app_name = _text(merged, "app_name")
    if not APP_NAME.match(app_name):
        raise ConfigError(
            "app_name",
            "app_name must be a Heroku app name: 3-30 lowercase letters, digits and dashes, starting with a letter",
        )
    return app_name


def _channel(merged: Mapping[str, Any]) -> str:
    channel = _text(merged, "slack_channel")
    if not channel.startswith("#"):
        raise ConfigError("slack_channel", "slack_channel must start with # (e.g. #ops)")
    if not CHANNEL.match(channel):
        raise ConfigError(
            "slack_channel", "slack_channel must be a channel name after the #: lowercase, no spaces, at most 80"
        )
    return channel


def _check_interval(merged: Mapping[str, Any]) -> int:
    raw = merged.get("check_interval")
    return DEFAULT_INTERVAL if raw is None else _interval(raw)


# Each field's check, in the order the form shows them.
_CHECKS = (("app_name", _app_name), ("slack_channel", _channel), ("check_interval", _check_interval))


def config_errors(
    body: Mapping[str, Any], current: Mapping[str, Any] | None = None, *, required: tuple[str, ...] = ()
) -> dict[str, ConfigError]:
    """Every field of the configuration after ``body`` that is missing or wrong, in form order
    (empty if it is valid): the checks :func:`parse_config` makes, each field judged on its own,
    so a form can show every error at once. ``required`` fields must be in ``body`` itself."""
    merged = {**(current or {}), **{k: body[k] for k in CONFIG_FIELDS if k in body}}
    errors: dict[str, ConfigError] = {}
    for name, check in _CHECKS:
        if name in required and body.get(name) is None:
            errors[name] = ConfigError(name, f"{name} is required", missing=True)
            continue
        try:
            check(merged)
        except ConfigError as exc:
            errors[name] = exc
    return errors


def parse_config(
    body: Mapping[str, Any], current: Mapping[str, Any] | None = None, *, required: tuple[str, ...] = ()
) -> Config:
    """The configuration after ``body`` (a new monitor's fields, or a change over ``current``),
    checked field by field in the order the form shows them; ConfigError names the first bad one
    (and its ``errors`` every bad one, field by field)."""
    errors = config_errors(body, current, required=required)
    if errors:
        first = next(iter(errors.values()))
        first.errors = {name: exc.message for name, exc in errors.items()}
        raise first
    merged = {**(current or {}), **{k: body[k] for k in CONFIG_FIELDS if k in body}}
    return Config(_app_name(merged), _channel(merged), _check_interval(merged))


def interval_seconds(config: Mapping[str, Any], minute: float) -> float:
    return float(config.get("check_interval") or DEFAULT_INTERVAL) * minute


# -- snapshots: what the prober saw, cut down to what is compared and shown -------------------


def config_hash(config_vars: Mapping[str, Any], salt: str) -> str:
    """A keyed hash of the config vars (names and values): a change shows, the values never leave
    the prober. Keyed with a per-monitor salt, so the stored hash cannot be looked up."""
    canonical = orjson.dumps(dict(config_vars), option=orjson.OPT_SORT_KEYS)
    return hmac.new(salt.encode(), canonical, hashlib.sha256).hexdigest()


def _s(value: Any, limit: int = 200) -> str | None:
    """A string from the API, cut to ``limit`` and without NUL (which Postgres cannot store)."""
    return value.replace("\x00", "")[:limit] if isinstance(value, str) else None


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def snapshot(
    app: Mapping[str, Any],
    dynos: list[Mapping[str, Any]],
    releases: list[Mapping[str, Any]],
    config_vars_hash: str,
    addons: list[Mapping[str, Any]],
) -> dict[str, Any]:
    """The snapshot sent to the detector, from the Platform API's objects (App, Dyno, Release,
    Add-on). ``releases`` may be in any order: the newest version is kept."""
    newest = max(
        (r for r in releases if isinstance(r.get("version"), int) and not isinstance(r.get("version"), bool)),
        key=lambda r: r["version"],
        default=None,
    )
    release = None
    if newest is not None:
        release = {
            "version": newest["version"],
            "user": _s(_obj(newest, "user").get("email")),
            "slug": _s(_obj(newest, "slug").get("id")),
            "status": _s(newest.get("status")),
            "description": _s(newest.get("description"), 500),
            "created_at": _s(newest.get("created_at")),
        }
    return {
        "app": {"name": _s(app.get("name")), "maintenance": bool(app.get("maintenance"))},
        "dynos": sorted(
            (
                {"name": _s(d.get("name")) or "?", "type": _s(d.get("type")) or "?", "state": _s(d.get("state")) or "?"}
                for d in dynos
            ),
            key=lambda d: d["name"],
        ),
        "release": release,
        "config_hash": config_vars_hash,
        "addons": sorted(
            (
                {
                    "name": _s(a.get("name")) or "?",
                    "service": _s(_obj(a, "addon_service").get("name")),
                    "plan": _s(_obj(a, "plan").get("name")),
                    "state": _s(a.get("state")) or "?",
                }
                for a in addons
            ),
            key=lambda a: a["name"],
        ),
    }


@dataclass(frozen=True, slots=True)
class Observation:
    checked_at: float
    snapshot: dict[str, Any] | None = None
    error: dict[str, str] | None = None  # {"code", "message"}


def _checked_list(raw: Any, keys: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ValueError(f"{what} must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in keys):
            raise ValueError(f"every {what} entry needs string {', '.join(keys)}")
        out.append(item)
    return out


def parse_observation(payload: Mapping[str, Any]) -> Observation:
    """An observation payload as the prober builds it; ValueError for anything else."""
    at = payload.get("checked_at")
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise ValueError("checked_at must be a time in unix seconds")
    error = payload.get("error")
    if error is not None:
        if not isinstance(error, dict) or error.get("code") not in ERROR_CODES:
            raise ValueError("error must be {code, message} with a known code")
        if not isinstance(error.get("message"), str):
            raise ValueError("error must be {code, message} with a known code")
        return Observation(float(at), error={"code": error["code"], "message": error["message"][:500]})
    snap = payload.get("snapshot")
    if not isinstance(snap, dict):
        raise ValueError("an observation carries a snapshot or an error")
    _checked_list(snap.get("dynos"), ("name", "type", "state"), "dynos")
    _checked_list(snap.get("addons"), ("name", "state"), "addons")
    release = snap.get("release")
    if release is not None and (not isinstance(release, dict) or type(release.get("version")) is not int):
        raise ValueError("release must be null or carry an integer version")
    if not isinstance(snap.get("config_hash"), str):
        raise ValueError("config_hash must be a string")
    return Observation(float(at), snapshot=snap)


# -- the state machine ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heroku:
    state: str = NEW
    snapshot: dict[str, Any] | None = None
    # Open problems: dyno name -> {"type", "state"}, add-on name -> {"service", "state"}.
    dynos: dict[str, dict[str, Any]] = field(default_factory=dict)
    addons: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # {"code", "message", "since"}
    checked_at: float | None = None

    @property
    def problems(self) -> bool:
        return bool(self.dynos or self.addons)


def load(state: str, data: Mapping[str, Any]) -> Heroku:
    problems = data.get("problems") or {}
    return Heroku(
        state=state,
        snapshot=data.get("snapshot"),
        dynos=dict(problems.get("dynos") or {}),
        addons=dict(problems.get("addons") or {}),
        error=data.get("error"),
        checked_at=data.get("checked_at"),
    )


def to_data(h: Heroku) -> dict[str, Any]:
    return {
        "snapshot": h.snapshot,
        "problems": {"dynos": h.dynos, "addons": h.addons},
        "error": h.error,
        "checked_at": h.checked_at,
    }


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to send: the kind's topic and what it says beyond the app itself."""

    topic: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    heroku: Heroku
    flips: list[Flip] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def _settled_state(h: Heroku) -> str:
    if h.error is not None:
        return ERROR
    if h.snapshot is None:
        return NEW
    return DOWN if h.problems else UP


def _dyno_list(problems: Mapping[str, Mapping[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    return [{"name": n, "type": problems[n]["type"], "state": problems[n]["state"]} for n in names]


def assess(
    before: Heroku, snap: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[Notice]]:
    """The open problems after ``snap`` and the notices about dynos and add-ons it brings."""
    notices: list[Notice] = []
    dynos: dict[str, dict[str, Any]] = {}
    crashed: list[str] = []
    down: list[str] = []
    back: list[dict[str, Any]] = []
    now_dynos = {d["name"]: d for d in snap["dynos"]}
    for name, dyno in now_dynos.items():
        state = dyno["state"]
        known = before.dynos.get(name)
        if state in PROBLEM_DYNO_STATES:
            dynos[name] = {"type": dyno["type"], "state": state}
            if known is None or known["state"] != state:
                (crashed if state == "crashed" else down).append(name)
        elif known is not None and state not in HEALTHY_DYNO_STATES:
            dynos[name] = known  # starting again after a crash: not back until it is up
        elif known is not None:
            back.append({"name": name, "type": dyno["type"], "state": state})
    back += [
        {"name": n, "type": p["type"], "state": "gone"} for n, p in sorted(before.dynos.items()) if n not in now_dynos
    ]
    if crashed:
        notices.append(Notice(CRASHED, {"dynos": _dyno_list(dynos, crashed)}))
    if down:
        notices.append(Notice(DYNOS_DOWN, {"dynos": _dyno_list(dynos, down)}))

    addons: dict[str, dict[str, Any]] = {}
    left, restored = [], []
    now_addons = {a["name"]: a for a in snap["addons"]}
    for name, addon in now_addons.items():
        entry = {"name": name, "service": addon.get("service"), "plan": addon.get("plan"), "state": addon["state"]}
        if addon["state"] not in FINE_ADDON_STATES:
            addons[name] = {"service": addon.get("service"), "state": addon["state"]}
            known = before.addons.get(name)
            if known is None or known["state"] != addon["state"]:
                left.append(entry)
        elif name in before.addons:
            restored.append(entry)
    restored += [
        {"name": n, "service": p.get("service"), "plan": None, "state": "gone"}
        for n, p in sorted(before.addons.items())
        if n not in now_addons
    ]
    if left:
        notices.append(Notice(ADDON, {"addons": left}))
    if back or restored:
        notices.append(Notice(RECOVERED, {"dynos": back, "addons": restored, "all_clear": not dynos and not addons}))
    return dynos, addons, notices


def _changes(before: dict[str, Any] | None, snap: dict[str, Any]) -> list[Notice]:
    """Deploys and config changes: only against an earlier snapshot (the first one is a baseline)."""
    if before is None:
        return []
    notices = []
    old, new = before.get("release"), snap.get("release")
    if new is not None and (old is None or new["version"] > old["version"]):
        if old is None or new.get("slug") != old.get("slug"):
            notices.append(Notice(DEPLOY, {"release": new}))
    if before.get("config_hash") != snap.get("config_hash"):
        notices.append(Notice(CONFIG, {}))
    return notices


def _problem_details(dynos: Mapping[str, Any], addons: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "dynos": [{"name": n, **p} for n, p in sorted(dynos.items())],
        "addons": [{"name": n, **p} for n, p in sorted(addons.items())],
    }


def _failed(before: Heroku, failure: dict[str, str], at: float) -> Step:
    """A check that could not read the app: the monitor shows why; the snapshot and the open
    problems stay as they were (nothing is known about the app now). Told once per kind of error."""
    same = before.error is not None and before.error.get("code") == failure["code"]
    error = {**failure, "since": before.error["since"] if same and before.error else at}
    flips = [] if before.state == ERROR else [Flip(before.state, ERROR, at, f"cannot check: {failure['code']}")]
    notices = [] if same else [Notice(ERRORED, {"error": error})]
    return Step(replace(before, state=ERROR, error=error, checked_at=at), flips, notices)


def observe(before: Heroku, obs: Observation) -> Step:
    """Fold one check into the monitor (a paused monitor takes none: the detector skips it)."""
    if before.state == PAUSED or (before.checked_at is not None and obs.checked_at <= before.checked_at):
        return Step(before)  # paused, or an older check overtaken by a newer one
    at = obs.checked_at
    if obs.error is not None:
        return _failed(before, obs.error, at)
    assert obs.snapshot is not None
    snap = obs.snapshot
    dynos, addons, notices = assess(before, snap)
    notices += _changes(before.snapshot, snap)
    after = replace(before, snapshot=snap, dynos=dynos, addons=addons, error=None, checked_at=at)
    state = _settled_state(after)
    flips: list[Flip] = []
    if not before.problems and after.problems:
        flips.append(
            Flip(before.state, state, at, "dynos or add-ons in trouble", OPEN, details=_problem_details(dynos, addons))
        )
    elif before.problems and not after.problems:
        flips.append(Flip(before.state, state, at, "recovered", RESOLVE, resumed_at=at))
    elif before.state != state:
        flips.append(Flip(before.state, state, at, "checked" if before.error is None else "checked again"))
    return Step(replace(after, state=state), flips, notices)


def resume(h: Heroku, at: float) -> tuple[Heroku, Flip]:
    """Back from ``paused``: the state the last check left (its incident, if any, is still open)."""
    state = _settled_state(h)
    return replace(h, state=state), Flip(PAUSED, state, at, "resumed")


def reconfigure(h: Heroku, old: Config, new: Config, at: float) -> Step:
    """New settings. Another app starts from nothing: its first check is a new baseline, and an
    incident about the old app's dynos is resolved (it no longer says anything about this one)."""
    if old.app_name == new.app_name:
        return Step(h)
    fresh = Heroku(state=PAUSED if h.state == PAUSED else NEW)
    flips = []
    if h.problems:
        flips.append(Flip(h.state, fresh.state, at, f"now watching {new.app_name}", RESOLVE, resumed_at=at))
    elif h.state != fresh.state:
        flips.append(Flip(h.state, fresh.state, at, f"now watching {new.app_name}"))
    return Step(fresh, flips)


# -- what people read -------------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


ACTIVE_SLACK = 60.0  # seconds a busy prober may lag before its app counts as unwatched


def active(state: str, checked_at: float | None, config: Mapping[str, Any], now: float, minute: float) -> bool:
    """ACTIVE: being checked and answered — not paused, not in error, and a check within two
    intervals (plus a minute's slack for a busy prober)."""
    if state in (PAUSED, ERROR) or checked_at is None:
        return False
    return now - checked_at <= 2 * interval_seconds(config, minute) + ACTIVE_SLACK


def _ago(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 90:
        return f"{s} seconds ago"
    if s < 5400:
        return f"{round(s / 60)} minutes ago"
    return f"{round(s / 3600)} hours ago"


def status_text(config: Mapping[str, Any], state: str, data: Mapping[str, Any], now: float, minute: float) -> str:
    """The ``/heroku-status`` answer for one app, from its latest snapshot (Slack mrkdwn)."""
    h = load(state, data)
    app = config.get("app_name", "?")
    is_active = active(state, h.checked_at, config, now, minute)
    lines = [f"🤠 *Heroku status: {app}* — *{'ACTIVE' if is_active else 'INACTIVE'}*"]
    if state == PAUSED:
        lines.append("Monitoring is paused.")
    if h.error is not None:
        lines.append(f"⚠️ Cannot check the app: {h.error.get('message')}")
    snap = h.snapshot
    if snap is None:
        lines.append("No check has completed yet.")
    else:
        if (snap.get("app") or {}).get("maintenance"):
            lines.append("🚧 Maintenance mode is on.")
        lines.append("*Dynos:*")
        lines += [f"• {d['name']} ({d['type']}): {d['state']}" for d in snap.get("dynos") or []] or ["• none running"]
        release = snap.get("release")
        if release:
            by = release.get("user") or "unknown"
            lines.append(f"*Release:* v{release['version']} by {by}")
        lines.append("*Add-ons:*")
        lines += [
            f"• {a['name']} ({a.get('service') or a.get('plan') or 'add-on'}): {a['state']}"
            for a in snap.get("addons") or []
        ] or ["• none"]
    if h.checked_at is not None:
        lines.append(f"*Last check:* {iso(h.checked_at)} ({_ago(now - h.checked_at)})")
    lines.append(f"*Channel:* {config.get('slack_channel')} · every {config.get('check_interval')} min")
    return "\n".join(lines)
