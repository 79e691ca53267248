"""``heartbeat(...)``: monitor a block or a function (sync or async) with start/finish pings.

One *run* = a ``start`` ping with a fresh run id (``rid``), then ``success`` when the block
returns, or ``fail`` with the exception (type, message, end of the traceback) as the body when
it raises; the exception is always re-raised. The server pairs the two pings by ``rid`` and
records the run's duration, so concurrent runs of the same job do not get mixed up.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._hb import failure_body

F = TypeVar("F", bound=Callable[..., Any])
if TYPE_CHECKING:
    from typing import TypeAlias

    from ._hb import Status

    # (token_or_url, status, body, rid) -> delivered. The module-level one looks the default
    # client up at each ping, so ``@heron.heartbeat`` applied at import time, before
    # ``heron.init()``, uses the client created later.
    SyncPing: TypeAlias = Callable[[str, Status, str | None, str | None], bool]


class Heartbeat:
    """A context manager (``with`` / ``async with``) and a decorator (sync and async functions).

    As a decorator, every call is its own run (safe for concurrent calls). As a context
    manager, an instance is meant for one block at a time (nesting in one thread works);
    ``heron.heartbeat(...)`` is cheap, so create one per ``with``. ``rid`` is the current run's id.
    """

    def __init__(self, token_or_url: str, ping: SyncPing) -> None:
        self.token_or_url = token_or_url
        self._ping = ping
        self._rids: list[str] = []

    @property
    def rid(self) -> str | None:
        """The run id of the innermost active ``with`` block, or None."""
        return self._rids[-1] if self._rids else None

    # -- one run ---------------------------------------------------------------------------

    def _start(self) -> str:
        rid = str(uuid.uuid4())
        self._ping(self.token_or_url, "start", None, rid)
        return rid

    def _finish(self, rid: str, exc: BaseException | None) -> None:
        if exc is None:
            self._ping(self.token_or_url, "success", None, rid)
            return
        if isinstance(exc, SystemExit):
            # sys.exit() inside a job: its code says how the job ended, like a cron job's.
            code = exc.code
            if code is None or code == 0:
                self._ping(self.token_or_url, "success", None, rid)
                return
            status: Status = code if isinstance(code, int) and not isinstance(code, bool) else "fail"
            self._ping(self.token_or_url, status, failure_body(exc), rid)
            return
        self._ping(self.token_or_url, "fail", failure_body(exc), rid)

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Heartbeat:
        self._rids.append(self._start())
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._finish(self._rids.pop(), exc)  # returns None: the exception propagates

    async def __aenter__(self) -> Heartbeat:
        # The pings block (bounded); run them in a worker thread, never on the event loop.
        self._rids.append(await asyncio.to_thread(self._start))
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        await asyncio.to_thread(self._finish, self._rids.pop(), exc)

    # -- decorator -------------------------------------------------------------------------

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                rid = await asyncio.to_thread(self._start)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    await asyncio.to_thread(self._finish, rid, exc)
                    raise
                await asyncio.to_thread(self._finish, rid, None)
                return result

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            rid = self._start()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._finish(rid, exc)
                raise
            self._finish(rid, None)
            return result

        return cast(F, run)

    def __repr__(self) -> str:
        return f"<heron.Heartbeat rid={self.rid!r}>"  # not the token: it is a credential
