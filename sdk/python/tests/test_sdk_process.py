"""Process-level behaviour: fork() and the flush at interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from heron_fake_server import API_KEY, HB_TOKEN, FakeHeron

import heron

SDK_DIR = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_fork_child_has_its_own_sender_and_no_parent_events(server: FakeHeron, make_client: Any) -> None:
    client = make_client(flush_interval=3600)  # nothing leaves on its own in this test
    client.track("parent.before_fork")

    pid = os.fork()
    if pid == 0:  # child: must never return into pytest
        code = 1
        try:
            client.track("child.event", {"pid": os.getpid()})
            ok = client.flush(timeout=10)
            stats = client.stats()
            code = 0 if ok and stats.sent == 1 and stats.queued == 0 else 2
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # The child delivered its own event only: it did not inherit the parent's buffer.
    assert server.names() == ["child.event"]
    assert server.events[0]["metadata"]["pid"] == pid
    # The parent's sender is unaffected and still holds its event.
    assert client.stats().queued == 1
    client.track("parent.after_fork")
    assert client.flush(timeout=10)
    assert server.names() == ["child.event", "parent.before_fork", "parent.after_fork"]


def _run_script(server: FakeHeron, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ)
    environ.update(
        HERON_API_KEY=API_KEY,
        HERON_ENDPOINT=server.url,
        # Works whether or not the SDK is pip-installed in this interpreter.
        PYTHONPATH=os.pathsep.join(filter(None, [str(SDK_DIR), environ.get("PYTHONPATH")])),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_events_are_flushed_at_interpreter_exit(server: FakeHeron) -> None:
    result = _run_script(
        server,
        """
        import heron
        heron.init(service="exit-test", flush_interval=3600)  # the timer would never fire
        for i in range(250):
            heron.track("exit.event", {"i": i})
        heron.ping("hb_tok_abc123")  # HB_TOKEN; synchronous: delivered before the script goes on
        # no flush(), no close(): the atexit hook must deliver
        """,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(e["metadata"]["i"] for e in server.events) == list(range(250))
    assert all(e["service"] == "exit-test" for e in server.events)
    assert [(p.token, p.kind) for p in server.hb_pings] == [(HB_TOKEN, "success")]


def test_exit_flush_is_bounded_when_the_server_is_down(server: FakeHeron) -> None:
    server.down()
    result = _run_script(
        server,
        """
        import heron
        heron.init(shutdown_timeout=0.5)
        heron.track("lost")
        """,
    )
    # The process still exits (bounded wait) and says what it could not deliver.
    assert result.returncode == 0, result.stderr
    assert "could not be delivered before shutdown" in result.stderr


def test_sdk_imports_nothing_outside_the_standard_library() -> None:
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import heron, heron.webhooks
        new = {m.split(".")[0] for m in set(sys.modules) - before}
        stdlib = set(sys.stdlib_module_names)
        print(sorted(m for m in new if m not in stdlib and m != "heron" and not m.startswith("_")))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(SDK_DIR))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert heron.__version__


def _mp_worker(endpoint: str, create_in_child: bool) -> None:
    if create_in_child:
        heron.init(API_KEY, endpoint=endpoint, flush_interval=3600)
    heron.track("mp.event", {"created_in_child": create_in_child})
    # returns without flush(): multiprocessing then ends the process with os._exit()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method")
@pytest.mark.parametrize("create_in_child", [False, True], ids=["inherited-client", "client-made-in-child"])
def test_multiprocessing_fork_child_flushes_on_exit(server: FakeHeron, create_in_child: bool) -> None:
    import multiprocessing

    try:
        if not create_in_child:
            heron.init(API_KEY, endpoint=server.url, flush_interval=3600)
        process = multiprocessing.get_context("fork").Process(target=_mp_worker, args=(server.url, create_in_child))
        process.start()
        process.join(60)
        assert process.exitcode == 0
        assert server.events == [
            {
                "event_name": "mp.event",
                "timestamp": server.events[0]["timestamp"],
                "metadata": {"created_in_child": create_in_child},
            }
        ]
    finally:
        heron.close()
