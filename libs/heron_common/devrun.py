"""``heron-dev`` (``make run``): the whole system on one machine, against local servers.

Creates the database if needed, applies migrations, makes (and keeps) an admin token, starts the
four services as child processes, waits until each is ready, and prints where the API listens.
Ctrl-C (or SIGTERM) stops them all gracefully; if one dies, the others are stopped too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

from heron_common import db
from heron_common.keys import new_admin_token
from heron_common.settings import Settings, SettingsError

SERVICES = (
    ("ingest", "heron_ingest", "ingest_port"),
    ("detector", "heron_detector", "detector_port"),
    ("notifier", "heron_notifier", "notifier_port"),
    ("prober", "heron_prober", "prober_port"),
)
STATE_DIR = Path(os.environ.get("HERON_DEV_STATE", ".heron"))


def _admin_token(env: dict[str, str]) -> str:
    if env.get("HERON_ADMIN_TOKEN"):
        return env["HERON_ADMIN_TOKEN"]
    path = STATE_DIR / "admin_token"
    if path.exists():
        return path.read_text().strip()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    token = new_admin_token()
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


async def _run(settings: Settings, env: dict[str, str]) -> int:
    created = await db.ensure_database(settings.database_url)
    applied = await db.migrate(settings.database_url)
    print(f"heron-dev: database {'created' if created else 'ready'}; migrations applied: {len(applied)}", flush=True)

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
            print(
                "\n"
                f"  Heron is running.\n"
                f"  API:          {api}\n"
                f"  Admin token:  {env['HERON_ADMIN_TOKEN']}   (kept in {STATE_DIR / 'admin_token'})\n"
                f"  Try:          curl -X POST -H 'Authorization: Bearer {env['HERON_ADMIN_TOKEN']}' "
                f"'{api}/v1/projects?name=MyApp'\n"
                f"  Stop:         Ctrl-C\n",
                flush=True,
            )
    await stop.wait()
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(p.wait() for p in children.values()))
    for w in watchers:
        w.cancel()
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1


def main() -> None:
    env = dict(os.environ)
    try:
        env["HERON_ADMIN_TOKEN"] = _admin_token(env)
        settings = Settings.from_env(env)
    except SettingsError as exc:
        sys.exit(f"heron-dev: configuration error: {exc}")
    env.setdefault("HERON_HTTP_HOST", "127.0.0.1")
    env.setdefault("HERON_LOG_JSON", "false")
    sys.exit(asyncio.run(_run(settings, env)))


if __name__ == "__main__":
    main()
