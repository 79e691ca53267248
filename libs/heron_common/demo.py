"""``heron-dev --demo`` (``make demo``): a demo project a newcomer can watch in the dashboard.

Through the public API only (as any client would): it creates the project "Demo Ranch", a
heartbeat and an on-call trigger, then sends a few realistic event streams. After a while one
stream (``payment.captured``) stops, so the detector opens an incident; later it comes back and
the incident resolves. With the demo's timings (``heron-dev --demo`` runs the services with a
5-second minimum tolerance) the incident opens about 40 s in and resolves about 80 s in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

# What heron-dev sets for a demo run (unless already set): a stream is judged silent after
# 5 s beyond its rhythm instead of a minute, so the incident shows within a minute.
# The demo squeezes days into a minute: a stream a few seconds old is, to the rate model at its
# production budget (one false alarm a year, young streams tolerant for hours), far too young to
# alert on. So, as the tests do, the demo lets the model's deadline be the mean gap plus
# HERON_MIN_TOLERANCE (docs/detection.md); a real install keeps the defaults.
DEMO_ENV = {
    "HERON_MIN_TOLERANCE": "5",
    "HERON_MIN_INTERVAL": "10",
    "HERON_FALSE_ALARMS_PER_YEAR": "1e9",
    "HERON_YOUNG_CLUSTERS_PER_HOUR": "inf",
}
PROJECT = "Demo Ranch"
STOPPING_STREAM = "payment.captured"

# name, service, environment, every how many ticks
STREAMS = (
    ("checkout.completed", "shop", "production", 1),
    (STOPPING_STREAM, "payments", "production", 1),
    ("signup.created", "accounts", "production", 2),
    ("email.sent", "mailer", "production", 3),
)


@dataclass(frozen=True)
class Timing:
    tick: float = 2.0  # seconds between rounds of events
    stop_after: float = 30.0  # when payment.captured goes silent
    resume_after: float = 80.0  # when it comes back (the incident resolves)
    heartbeat_interval: float = 30.0  # the demo heartbeat's interval (pinged twice as often)


class Demo:
    def __init__(
        self, api: str, admin_token: str, timing: Timing | None = None, say: Callable[[str], None] = print
    ) -> None:
        self.api = api.rstrip("/")
        self.admin_token = admin_token
        self.timing = timing or Timing()
        self.say = say
        self.project_id: int | None = None
        self.key = ""
        self.ping_url = ""

    async def _call(self, http: aiohttp.ClientSession, method: str, path: str, key: str, body: Any = None) -> Any:
        async with http.request(
            method, f"{self.api}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as r:
            if r.status >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {r.status} {await r.text()}")
            return await r.json()

    async def setup(self, http: aiohttp.ClientSession) -> None:
        project = await self._call(http, "POST", f"/v1/projects?name={PROJECT.replace(' ', '%20')}", self.admin_token)
        self.project_id, self.key = project["project_id"], project["api_key"]
        interval = self.timing.heartbeat_interval
        heartbeat = await self._call(
            http,
            "POST",
            "/v1/heartbeats",
            self.key,
            {"name": "Nightly backup", "interval": interval, "grace": interval},
        )
        self.ping_url = heartbeat["ping_url"]
        service = await self._call(http, "POST", "/v1/services", self.key, {"name": "Database"})
        await self._call(
            http, "POST", "/v1/triggers", self.key, {"name": "Database CPU above 90%", "service_id": service["id"]}
        )

    def streaming(self, name: str, elapsed: float) -> bool:
        """Whether ``name`` sends at ``elapsed`` seconds into the demo (pure: the script)."""
        if name != STOPPING_STREAM:
            return True
        return not self.timing.stop_after <= elapsed < self.timing.resume_after

    async def run(self, stop: asyncio.Event, rounds: int | None = None) -> None:
        """Set up, then stream until ``stop`` is set (or ``rounds`` ticks have passed)."""
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            await self.setup(http)
            timing = self.timing
            self.say(
                f"demo: project {PROJECT!r} (#{self.project_id}) created; sign in to it with\n"
                f"      {self.api}/dashboard/signin#token={self.key}\n"
                f"      {STOPPING_STREAM} stops {timing.stop_after:g} s in and comes back {timing.resume_after:g} s in"
            )
            started = loop.time()
            told: set[str] = set()
            tick = 0
            pings_every = max(1, round(self.timing.heartbeat_interval / 2 / self.timing.tick))
            while not stop.is_set() and (rounds is None or tick < rounds):
                elapsed = loop.time() - started
                events = [
                    {"event_name": name, "service": service, "environment": env}
                    for name, service, env, every in STREAMS
                    if tick % every == 0 and self.streaming(name, elapsed)
                ]
                if events:
                    await self._call(http, "POST", "/v1/events", self.key, {"events": events})
                if tick % pings_every == 0:
                    async with http.get(self.ping_url) as r:
                        r.raise_for_status()
                if elapsed >= self.timing.stop_after and "stop" not in told:
                    told.add("stop")
                    self.say(f"demo: {STOPPING_STREAM} just went silent: watch an incident open on the overview")
                if elapsed >= self.timing.resume_after and "resume" not in told:
                    told.add("resume")
                    self.say(f"demo: {STOPPING_STREAM} is back: the incident resolves")
                tick += 1
                next_at = started + tick * self.timing.tick
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - loop.time()))
                except TimeoutError:
                    pass
