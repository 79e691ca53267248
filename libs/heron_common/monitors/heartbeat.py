"""The ``heartbeat`` kind: a cron job or worker pings Heron; silence past its window is an incident.

Pure: no I/O, every time explicit (unix seconds). The detector feeds it pings and scan times and
persists what it returns (:class:`Step`).

States (the statuses users see):

- ``new``: no ping yet since creation (or since resuming): nothing is expected, nothing alerts;
- ``up``: the last ping came within the expected window;
- ``late``: the next ping was due and has not come, but the grace period still runs (topic
  ``heartbeat.late``, no incident);
- ``down``: the grace period passed too, or the job reported a failure: an incident is open
  (``incident.opened`` + ``heartbeat.down``); the next successful ping resolves it
  (``incident.resolved`` + ``heartbeat.up``);
- ``paused``: pings are recorded, nothing is judged.

When the next ping is due (:meth:`Config.next_due`): either ``interval`` seconds after the last
ping, or — with a ``schedule`` (a cron expression) — the next scheduled time after the last ping in
the monitor's time zone ``tz``, so a daily ``0 2 * * *`` job in Europe/Berlin is due at 02:00 local
time whether the day had 23, 24 or 25 hours. Cron expressions are evaluated by ``cronsim`` (the
healthchecks.io author's library: Debian-cron semantics across DST changes; a hand-written parser
would get those wrong).

A ``start`` ping opens a run: the job must then finish (a success, ``fail`` or exit-code ping)
within ``grace`` seconds of the start, or it is down. ``fail`` or a non-zero exit code is down at
once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from heron_common import blind
from heron_common.monitors import OPEN, PAUSED, RESOLVE, Flip

KIND = "heartbeat"
NEW, UP, LATE, DOWN = "new", "up", "late", "down"
SUCCESS, START, FAIL, EXIT = "success", "start", "fail", "exit"
PING_KINDS = (SUCCESS, START, FAIL, EXIT)
# Topics of this kind (beside incident.*), written to the outbox by the detector.
TOPIC_LATE, TOPIC_DOWN, TOPIC_UP = "heartbeat.late", "heartbeat.down", "heartbeat.up"
MAX_SECONDS = 366 * 86400.0  # a year and a day: the longest interval or grace accepted

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class ConfigError(ValueError):
    """A setting that cannot be used; ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def parse_duration(value: Any, field: str, *, minimum: float = 0.0) -> float:
    """Seconds from ``24h``, ``10m``, ``90s``, ``1d``, ``1h30m``, ``2w`` or a number of seconds."""
    why = "must be a duration such as 90s, 10m, 24h, 1d (or a number of seconds)"
    if isinstance(value, bool):
        raise ConfigError(field, why)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if _DURATION.sub("", text) != "" or len(text) > 40:
                raise ConfigError(field, why) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    else:
        raise ConfigError(field, why)
    if not math.isfinite(seconds) or not minimum <= seconds <= MAX_SECONDS:
        raise ConfigError(field, f"must be from {minimum:g} s to {MAX_SECONDS:g} s (366 days); got {value!r}")
    return seconds


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or ConfigError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError("tz", f"must be an IANA time zone name such as Europe/Berlin; got {name!r}") from None


def next_scheduled(schedule: str, tz: str, after: float) -> float:
    """The first time ``schedule`` fires strictly after ``after``, judged in ``tz``."""
    start = datetime.fromtimestamp(after, zone(tz))
    try:
        return next(CronSim(schedule, start)).timestamp()
    except CronSimError as exc:
        raise ConfigError("schedule", f"is not a valid cron expression: {exc}") from None
    except StopIteration:  # pragma: no cover - cronsim ends only past year 9999
        raise ConfigError("schedule", "never fires") from None


@dataclass(frozen=True, slots=True)
class Config:
    """What the user declared: ``interval`` + ``grace``, or ``schedule`` + ``tz`` + ``grace``."""

    grace: float
    interval: float | None = None
    schedule: str | None = None
    tz: str = "UTC"

    def next_due(self, after: float) -> float:
        if self.schedule is not None:
            return next_scheduled(self.schedule, self.tz, after)
        assert self.interval is not None
        return after + self.interval

    def to_dict(self) -> dict[str, Any]:
        if self.schedule is not None:
            return {"schedule": self.schedule, "tz": self.tz, "grace": self.grace}
        return {"interval": self.interval, "grace": self.grace}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Config:
        if config.get("schedule") is not None:
            return cls(float(config["grace"]), None, str(config["schedule"]), str(config.get("tz") or "UTC"))
        return cls(float(config["grace"]), float(config["interval"]))


def parse_config(body: Mapping[str, Any], *, min_interval: float, now: float) -> Config:
    """The user's settings, checked (ConfigError naming the field otherwise).

    ``interval`` + ``grace``, or ``schedule`` (+ ``tz``, default UTC) + ``grace``; both the
    interval and the schedule's first gap must be at least ``min_interval``, and so must grace.
    """
    has_interval, has_schedule = body.get("interval") is not None, body.get("schedule") is not None
    if has_interval and has_schedule:
        raise ConfigError("schedule", "cannot be combined with interval: send one or the other")
    if not has_interval and not has_schedule:
        raise ConfigError("interval", "is required (or a cron schedule, with tz)")
    if body.get("grace") is None:
        raise ConfigError("grace", "is required: how long after the expected ping to wait before alerting")
    grace = parse_duration(body["grace"], "grace", minimum=min_interval)
    if has_interval:
        if body.get("tz") is not None:
            raise ConfigError("tz", "only applies to a schedule")
        return Config(grace, parse_duration(body["interval"], "interval", minimum=min_interval))
    schedule, tz = body["schedule"], body.get("tz") or "UTC"
    if not isinstance(schedule, str) or not schedule.strip() or len(schedule) > 200:
        raise ConfigError("schedule", "must be a cron expression such as '0 2 * * *'")
    if not isinstance(tz, str) or len(tz) > 64:
        raise ConfigError("tz", "must be an IANA time zone name such as Europe/Berlin")
    zone(tz)
    schedule = " ".join(schedule.split())
    first = next_scheduled(schedule, tz, now)
    gap = next_scheduled(schedule, tz, first) - first
    if gap < min_interval:
        raise ConfigError("schedule", f"fires every {gap:g} s, more often than the minimum of {min_interval:g} s")
    return Config(grace, None, schedule, tz)


@dataclass(frozen=True, slots=True)
class Ping:
    kind: str  # success, start, fail, exit
    at: float
    exit_code: int | None = None
    rid: str | None = None

    @property
    def failed(self) -> bool:
        return self.kind == FAIL or (self.kind == EXIT and self.exit_code not in (None, 0))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    state: str = NEW
    last_ping: float | None = None  # the last finished run (success or failure)
    last_kind: str | None = None
    last_exit_code: int | None = None
    started: float | None = None  # a run in progress: when its start ping came
    rid: str | None = None  # the run's id, to pair the start with its finish

    def data(self) -> dict[str, Any]:
        """What the detector keeps in ``monitors.data`` (the state has its own column)."""
        return {
            "last_ping": self.last_ping,
            "last_kind": self.last_kind,
            "last_exit_code": self.last_exit_code,
            "started": self.started,
            "rid": self.rid,
        }

    @classmethod
    def load(cls, state: str, data: Mapping[str, Any]) -> Heartbeat:
        return cls(
            state,
            data.get("last_ping"),
            data.get("last_kind"),
            data.get("last_exit_code"),
            data.get("started"),
            data.get("rid"),
        )


@dataclass(frozen=True, slots=True)
class Step:
    heartbeat: Heartbeat
    deadline: float | None  # when to look again (the scan calls :func:`due`)
    flips: tuple[Flip, ...] = ()
    topics: tuple[str, ...] = ()  # this kind's own topics to emit
    duration: float | None = None  # a finished run's duration (start → finish)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def summary(hb: Heartbeat) -> dict[str, Any]:
    """The last ping, as an incident's ``details`` and a topic's ``data`` show it."""
    return {
        "last_ping_at": iso(hb.last_ping),
        "last_ping_kind": hb.last_kind,
        "last_exit_code": hb.last_exit_code,
        "run_started_at": iso(hb.started),
    }


def _thresholds(hb: Heartbeat, config: Config) -> tuple[float | None, float, float, float | None] | None:
    """``(late_at, down_at, since, interval)`` before blind windows, or None if nothing is due."""
    if hb.state in (PAUSED, DOWN):
        return None
    if hb.started is not None:  # a run in progress must finish within grace of its start
        return None, hb.started + config.grace, hb.started, None
    if hb.state == NEW or hb.last_ping is None:  # nothing expected before the first ping
        return None
    due_at = config.next_due(hb.last_ping)
    return due_at, due_at + config.grace, hb.last_ping, due_at - hb.last_ping


def deadline(hb: Heartbeat, config: Config) -> float | None:
    """The next moment the detector must judge the heartbeat (ignoring blind windows)."""
    marks = _thresholds(hb, config)
    if marks is None:
        return None
    late_at, down_at, _, _ = marks
    return late_at if hb.state != LATE and late_at is not None else down_at


def due(hb: Heartbeat, config: Config, now: float, windows: Iterable[blind.Window] = ()) -> Step:
    """Judge the heartbeat at ``now`` (the shard's watermark). Heron's own blind windows move both
    marks on (``heron_common.blind``): a ping Heron may have turned away never pages."""
    marks = _thresholds(hb, config)
    if marks is None:
        return Step(hb, None)
    late_at, down_at, since, interval = marks
    spans = list(windows)
    moved = blind.deadline_past_windows(since, interval, down_at, spans) if spans else down_at
    shift = moved - down_at
    late_at = None if late_at is None else late_at + shift
    down_at = moved
    if now >= down_at:
        if hb.started is not None:
            reason = f"the run started at {iso(hb.started)} did not finish within its grace period"
        else:
            reason = "no ping within the expected interval and grace period"
        flip = Flip(hb.state, DOWN, now, reason, incident=OPEN, silent_since=since, details=summary(hb))
        return Step(replace(hb, state=DOWN), None, (flip,), (TOPIC_DOWN,))
    if late_at is not None and now >= late_at and hb.state == UP:
        flip = Flip(UP, LATE, now, "the expected ping is late (grace period running)")
        return Step(replace(hb, state=LATE), down_at, (flip,), (TOPIC_LATE,))
    return Step(hb, late_at if late_at is not None and hb.state == UP else down_at)


def ping(hb: Heartbeat, config: Config, p: Ping) -> Step:
    """Fold one ping into the heartbeat."""
    if p.kind == START:
        started = replace(hb, started=p.at, rid=p.rid)
        return Step(started, deadline(started, config) if hb.state != PAUSED else None)
    finished = hb.started is not None and (p.rid is None or hb.rid is None or p.rid == hb.rid)
    duration = max(0.0, p.at - hb.started) if finished and hb.started is not None else None
    after = replace(
        hb,
        last_ping=max(p.at, hb.last_ping or p.at),
        last_kind=p.kind,
        last_exit_code=p.exit_code,
        started=None if finished else hb.started,
        rid=None if finished else hb.rid,
    )
    if hb.state == PAUSED:
        return Step(after, None, duration=duration)
    flips: list[Flip] = []
    topics: list[str] = []
    if p.failed:
        if hb.state != DOWN:
            code = f" (exit code {p.exit_code})" if p.kind == EXIT else ""
            flips.append(
                Flip(hb.state, DOWN, p.at, f"the job reported a failure{code}", OPEN, p.at, details=summary(after))
            )
            topics.append(TOPIC_DOWN)
        after = replace(after, state=DOWN)
    elif hb.state == DOWN:
        flips.append(
            Flip(DOWN, UP, p.at, "ping received", RESOLVE, silent_since=hb.last_ping, resumed_at=p.at, details=None)
        )
        topics.append(TOPIC_UP)
        after = replace(after, state=UP)
    elif hb.state != UP:
        flips.append(Flip(hb.state, UP, p.at, "first ping" if hb.state == NEW else "ping received"))
        after = replace(after, state=UP)
    return Step(after, deadline(after, config), tuple(flips), tuple(topics), duration)


def resume(hb: Heartbeat, at: float, *, incident_open: bool) -> Step:
    """Back from paused: ``new`` (waiting for a ping; the pause is not held against the job), or
    ``down`` if an incident is still open, so the next ping resolves it."""
    state = DOWN if incident_open else NEW
    return Step(replace(hb, state=state, started=None, rid=None), None, (Flip(PAUSED, state, at, "resumed"),))


def reconfigure(hb: Heartbeat, config: Config, now: float) -> Step:
    """New settings: the deadline follows them; a late heartbeat the new window covers is up."""
    if hb.state == LATE and hb.started is None and hb.last_ping is not None and now < config.next_due(hb.last_ping):
        up = replace(hb, state=UP)
        return Step(up, deadline(up, config), (Flip(LATE, UP, now, "settings changed"),))
    return Step(hb, deadline(hb, config))
