"""The ``trigger`` kind: an on-call trigger with Heii On-Call's semantics, pure.

States: ``resolved`` (quiet, may fire), ``alerting`` (an incident is open and people are being
told), ``acknowledged`` (someone is on it: no more escalation), and the shared ``paused``.

- ``alert``: resolved → alerting, opening an incident that carries the alert's body. Alerting
  again while alerting or acknowledged changes nothing (the endpoints are idempotent: one incident,
  one notification), and a paused trigger never alerts.
- ``acknowledge``: alerting → acknowledged.
- ``resolve``: alerting/acknowledged → resolved, so the trigger can fire again.
- ``checkin`` (``liveness`` triggers): resolves an alerting/acknowledged trigger and restarts its
  timer; a liveness trigger with no check-in within ``timeout`` seconds goes alerting by itself
  (``check_timeout``, called by the detector when the deadline falls due).

A ``manual`` trigger has no deadline; a resolved ``liveness`` one is due at ``since + timeout``,
where ``since`` is its last check-in, or the moment its timer last (re)started (created, resolved
by hand, resumed, reconfigured) — so a trigger resolved by hand is not timed out again at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from heron_common.monitors import ACKNOWLEDGE, OPEN, PAUSED, RESOLVABLE_BY_HAND, RESOLVE, Flip

KIND = "trigger"
RESOLVED, ALERTING, ACKNOWLEDGED = "resolved", "alerting", "acknowledged"
MANUAL, LIVENESS = "manual", "liveness"
TRIGGER_KINDS = (MANUAL, LIVENESS)
ACTIONS = ("alert", "acknowledge", "resolve", "checkin")
# Heii keeps up to 10,240 bytes of an alert's body; a longer one is cut (never refused: an alert
# must not be lost because its sender was verbose), and the cut is marked.
MAX_BODY_BYTES = 10_240
TRUNCATED = "…[truncated]"
# The kind's own topics, written beside the incident.* alert of the same flip.
TOPICS = {OPEN: "trigger.alerting", ACKNOWLEDGE: "trigger.acknowledged", RESOLVE: "trigger.resolved"}

RESOLVABLE_BY_HAND.add(KIND)


@dataclass(frozen=True, slots=True)
class Trigger:
    state: str
    trigger_kind: str = MANUAL
    timeout: float | None = None  # seconds, liveness only
    since: float = 0.0  # when the liveness timer last (re)started
    last_checkin: float | None = None
    critical: bool = True
    escalate: bool = True

    @property
    def liveness(self) -> bool:
        return self.trigger_kind == LIVENESS and self.timeout is not None

    def deadline(self) -> float | None:
        """When a resolved liveness trigger times out; None for anything else."""
        if self.state != RESOLVED or not self.liveness:
            return None
        assert self.timeout is not None
        return self.since + self.timeout


def from_row(state: str, config: Mapping[str, Any], data: Mapping[str, Any]) -> Trigger:
    timeout = config.get("timeout")
    return Trigger(
        state=state,
        trigger_kind=str(config.get("trigger_kind") or MANUAL),
        timeout=float(timeout) if timeout is not None else None,
        since=float(data.get("since") or 0.0),
        last_checkin=float(data["last_checkin"]) if data.get("last_checkin") is not None else None,
        critical=bool(config.get("critical", True)),
        escalate=bool(config.get("escalate", True)),
    )


def to_data(trigger: Trigger) -> dict[str, Any]:
    """What the detector keeps in ``monitors.data``."""
    return {"since": trigger.since, "last_checkin": trigger.last_checkin}


def cut_body(text: str) -> str:
    """``text`` kept within MAX_BODY_BYTES of UTF-8, marker included, cut on a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= MAX_BODY_BYTES:
        return text
    room = MAX_BODY_BYTES - len(TRUNCATED.encode("utf-8"))
    return raw[:room].decode("utf-8", errors="ignore") + TRUNCATED


def _details(trigger: Trigger, reason: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "trigger_kind": trigger.trigger_kind,
        "reason": reason,
        "critical": trigger.critical,
        "escalate": trigger.escalate,
    }
    if body:
        details.update(body)
    return details


def alert(trigger: Trigger, at: float, body: Mapping[str, Any] | None = None) -> tuple[Trigger, Flip | None]:
    """``body``: what the alert carried (``body`` text, ``content_type``, parsed ``data``)."""
    if trigger.state != RESOLVED:
        return trigger, None  # alerting/acknowledged: idempotent; paused: never alerts
    flip = Flip(RESOLVED, ALERTING, at, "alerted", incident=OPEN, details=_details(trigger, "alert", body))
    return replace(trigger, state=ALERTING), flip


def acknowledge(trigger: Trigger, at: float) -> tuple[Trigger, Flip | None]:
    if trigger.state == ALERTING:
        return replace(trigger, state=ACKNOWLEDGED), Flip(ALERTING, ACKNOWLEDGED, at, "acknowledged", ACKNOWLEDGE)
    if trigger.state == PAUSED:  # a paused monitor's open incident can still be acknowledged
        return trigger, Flip(PAUSED, PAUSED, at, "acknowledged", ACKNOWLEDGE)
    return trigger, None


def resolve(trigger: Trigger, at: float, reason: str = "resolved") -> tuple[Trigger, Flip | None]:
    """Resolved by hand (or by a check-in): the liveness timer restarts from ``at``."""
    if trigger.state in (ALERTING, ACKNOWLEDGED):
        return replace(trigger, state=RESOLVED, since=at), Flip(trigger.state, RESOLVED, at, reason, RESOLVE)
    if trigger.state == PAUSED:  # ... and resolved by hand, staying paused
        return trigger, Flip(PAUSED, PAUSED, at, reason, RESOLVE)
    return trigger, None


def checkin(trigger: Trigger, at: float) -> tuple[Trigger, Flip | None]:
    """A liveness trigger's check-in: the timer restarts, and an open alert resolves. A manual
    trigger takes no check-ins (the API refuses them; here they change nothing)."""
    if not trigger.liveness:
        return trigger, None
    if at < trigger.since and trigger.state == RESOLVED:
        return trigger, None  # an older check-in, overtaken: the timer already runs from later
    checked = replace(trigger, last_checkin=max(at, trigger.last_checkin or at))
    if trigger.state == PAUSED:
        return checked, None
    if trigger.state in (ALERTING, ACKNOWLEDGED):
        return resolve(checked, at, "checked in")
    return replace(checked, since=max(at, trigger.since)), None


def check_timeout(trigger: Trigger, now: float) -> tuple[Trigger, Flip | None]:
    """At ``now`` (the shard's watermark): a resolved liveness trigger past its deadline alerts."""
    deadline = trigger.deadline()
    if deadline is None or now < deadline:
        return trigger, None
    flip = Flip(
        RESOLVED,
        ALERTING,
        now,
        "no check-in within its timeout",
        incident=OPEN,
        silent_since=trigger.since,
        details=_details(trigger, "timeout", {"timeout": trigger.timeout, "last_checkin": trigger.last_checkin}),
    )
    return replace(trigger, state=ALERTING), flip


def resume(trigger: Trigger, at: float, open_incident: str | None) -> tuple[Trigger, Flip]:
    """Back from ``paused``: to the open incident's state (``alerting``/``acknowledged``) if one
    is open, else ``resolved`` with the liveness timer restarted (the pause is not held against it)."""
    state = open_incident or RESOLVED
    return replace(trigger, state=state, since=at), Flip(PAUSED, state, at, "resumed")


def reconfigure(trigger: Trigger, config: Mapping[str, Any], at: float) -> Trigger:
    """New settings; a resolved liveness trigger's timer restarts from ``at`` (a new timeout is
    not held against the time that passed under the old one)."""
    changed = from_row(trigger.state, config, to_data(trigger))
    if changed.state == RESOLVED and changed.liveness:
        changed = replace(changed, since=max(at, trigger.since))
    return changed


def apply(
    trigger: Trigger, action: str, at: float, body: Mapping[str, Any] | None = None
) -> tuple[Trigger, Flip | None]:
    """One trigger call (``alert``, ``acknowledge``, ``resolve``, ``checkin``)."""
    if action == "alert":
        return alert(trigger, at, body)
    if action == "acknowledge":
        return acknowledge(trigger, at)
    if action == "resolve":
        return resolve(trigger, at)
    if action == "checkin":
        return checkin(trigger, at)
    raise ValueError(f"unknown trigger action {action!r}")
