"""``heron-dev`` (``make run``): the whole system on one machine, against local servers.

Creates the database if needed, applies migrations, makes (and keeps) an admin token and a
dashboard session secret, starts the four services as child processes, waits until each is
ready, and prints where the API and the dashboard are, with a sign-in link. ``--demo`` (``make
demo``) also creates a demo project and streams events into it (``heron_common.demo``).
Ctrl-C (or SIGTERM) stops them all gracefully; if one dies, the others are stopped too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from heron_common import db
from heron_common.demo import DEMO_ENV, Demo
from heron_common.keys import new_admin_token
from heron_common.secretbox import reseal_database
from heron_common.settings import Settings, SettingsError

SERVICES = (
    ("ingest", "heron_ingest", "ingest_port"),
    ("detector", "heron_detector", "detector_port"),
    ("notifier", "heron_notifier", "notifier_port"),
    ("prober", "heron_prober", "prober_port"),
)
STATE_DIR = Path(os.environ.get("HERON_DEV_STATE", ".heron"))


def _kept(env: dict[str, str], name: str, file: str, make: Callable[[], str]) -> str:
    """``name`` from the environment, else kept in ``.heron/<file>`` (made once, owner-only)."""
    if env.get(name):
        return env[name]
    path = STATE_DIR / file
    if path.exists():
        return path.read_text().strip()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def _admin_token(env: dict[str, str]) -> str:
    return _kept(env, "HERON_ADMIN_TOKEN", "admin_token", new_admin_token)


def _session_secret(env: dict[str, str]) -> str:
    # Kept like the admin token, so dashboard sessions and badge URLs survive a restart.
    return _kept(env, "HERON_SESSION_SECRET", "session_secret", lambda: secrets.token_urlsafe(32))


def _secrets_key(env: dict[str, str]) -> str:
    # Kept like the admin token: the webhook secrets stored with it must still open after a restart.
    from cryptography.fernet import Fernet

    return _kept(env, "HERON_SECRETS_KEY", "secrets_key", lambda: Fernet.generate_key().decode())


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _banner(api: str, admin_token: str) -> str:
    return (
        "\n"
        f"  Heron is running.\n"
        f"  Dashboard:    {api}/dashboard/\n"
        f"  Sign in:      {api}/dashboard/signin#token={admin_token}\n"
        f"  API:          {api}\n"
        f"  Admin token:  {admin_token}   (kept in {STATE_DIR / 'admin_token'})\n"
        f"  Try:          curl -X POST -H 'Authorization: Bearer {admin_token}' '{api}/v1/projects?name=MyApp'\n"
        f"  Stop:         Ctrl-C\n"
    )


async def _run(settings: Settings, env: dict[str, str], demo: bool = False) -> int:
    created = await db.ensure_database(settings.database_url)
    applied = await db.migrate(settings.database_url)
    print(f"heron-dev: database {'created' if created else 'ready'}; migrations applied: {len(applied)}", flush=True)
    if settings.secrets_keys:  # as heron-migrate does: every stored secret sealed with the first key
        await reseal_database(settings.database_url, settings.secrets_keys)

    children: dict[str, asyncio.subprocess.Process] = {}
    for name, module, _ in SERVICES:
        children[name] = await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=env)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def watch(name: str, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if not stop.is_set():
            print(f"heron-dev: {name} exited with code {code}; stopping the others", file=sys.stderr, flush=True)
            stop.set()

    watchers = [asyncio.create_task(watch(n, p)) for n, p in children.items()]

    # Wait for every service to say it is ready (or for a failure).
    pending = {name: getattr(settings, attr) for name, _, attr in SERVICES}
    for _ in range(600):
        if stop.is_set() or not pending:
            break
        for name, port in list(pending.items()):
            if await asyncio.to_thread(_ready, port):
                del pending[name]
        if pending:
            await asyncio.sleep(0.1)
    if not stop.is_set():
        if pending:
            print(f"heron-dev: not ready after 60 s: {', '.join(pending)}", file=sys.stderr, flush=True)
        else:
            api = f"http://127.0.0.1:{settings.ingest_port}"
            print(_banner(api, env["HERON_ADMIN_TOKEN"]), flush=True)
            if demo:
                watchers.append(asyncio.create_task(_demo(api, env["HERON_ADMIN_TOKEN"], stop)))
    await stop.wait()
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(p.wait() for p in children.values()))
    for w in watchers:
        w.cancel()
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1


async def _demo(api: str, admin_token: str, stop: asyncio.Event) -> None:
    demo = Demo(api, admin_token, say=lambda line: print(line, flush=True))
    try:
        await demo.run(stop)
    except Exception as exc:  # the demo is a guest: it never takes the services down
        print(f"heron-dev: the demo stopped: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="heron-dev", description="Run Heron locally: every service, one command.")
    parser.add_argument(
        "--demo", action="store_true", help="also create a demo project and stream events into it (make demo)"
    )
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.demo:
        for name, value in DEMO_ENV.items():
            env.setdefault(name, value)
    try:
        env["HERON_ADMIN_TOKEN"] = _admin_token(env)
        env["HERON_SESSION_SECRET"] = _session_secret(env)
        env["HERON_SECRETS_KEY"] = _secrets_key(env)
        settings = Settings.from_env(env)
    except SettingsError as exc:
        sys.exit(f"heron-dev: configuration error: {exc}")
    env.setdefault("HERON_HTTP_HOST", "127.0.0.1")
    env.setdefault("HERON_LOG_JSON", "false")
    sys.exit(asyncio.run(_run(settings, env, demo=args.demo)))


if __name__ == "__main__":
    main()
