"""The heartbeat ping protocol's pure rules (heron._hb), tested directly."""

from __future__ import annotations

import uuid

import pytest

from heron import _hb

RID = "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    ("status", "segment"),
    [("success", ""), ("ok", ""), ("start", "/start"), ("fail", "/fail"), (0, "/0"), (1, "/1"), (255, "/255")],
)
def test_status_segments(status: str | int, segment: str) -> None:
    assert _hb.status_segment(status) == segment


def test_exit_codes_the_server_cannot_take_are_failures() -> None:
    assert _hb.status_segment(-9) == "/fail"  # subprocess: killed by SIGKILL
    assert _hb.status_segment(256) == "/fail"


@pytest.mark.parametrize("status", ["maybe", "", "START", None, 1.0])
def test_bad_statuses(status: object) -> None:
    with pytest.raises(ValueError):
        _hb.status_segment(status)  # type: ignore[arg-type]


def test_a_bool_status_is_a_mistake() -> None:
    with pytest.raises(TypeError):
        _hb.status_segment(True)


def test_token_goes_under_the_base_url_and_its_prefix() -> None:
    target = _hb.build_target("abc 1", "https://heron.example.com/heron/", "start", RID)
    assert target.url == f"https://heron.example.com/heron/api/v1/hb/abc%201/start?rid={RID}"
    assert target.endpoint.base_path == ""


def test_full_ping_url_is_used_as_is() -> None:
    url = "https://other.example.com:8443/api/v1/hb/abc123/"  # as pasted, trailing slash
    assert _hb.build_target(url, "http://ignored", "fail").url == "https://other.example.com:8443/api/v1/hb/abc123/fail"
    assert _hb.build_target(url, "http://ignored", 7, uuid.UUID(RID)).url.endswith(f"/abc123/7?rid={RID}")
    assert _hb.build_target(url + "?x=1", "http://i", "success", RID).path == f"/api/v1/hb/abc123?x=1&rid={RID}"


@pytest.mark.parametrize(
    ("value", "rid"),
    [
        ("", None),
        ("   ", None),
        ("a/b", None),  # neither a token nor a URL
        ("ftp://example.com/api/v1/hb/abc", None),
        ("https://example.com", None),  # no path
        ("https://example.com/api/v1/hb/abc#frag", None),
        ("abc", "not-a-uuid"),
    ],
)
def test_bad_targets(value: str, rid: str | None) -> None:
    with pytest.raises(ValueError):
        _hb.build_target(value, "http://localhost:8080", "success", rid)


def test_body_is_utf8_cut_to_10_kib_on_a_character_boundary() -> None:
    assert _hb.encode_body(None) == b""
    assert _hb.encode_body("log: ok") == b"log: ok"
    assert _hb.encode_body(b"\xff" * 20_000) == b"\xff" * _hb.MAX_BODY_BYTES
    assert len(_hb.encode_body("x" * 20_000)) == _hb.MAX_BODY_BYTES
    cut = _hb.encode_body("é" * 6000)  # 2 bytes each: 10240 falls on a boundary
    assert len(cut) == _hb.MAX_BODY_BYTES and cut.decode("utf-8") == "é" * 5120
    cut = _hb.encode_body("xy" + "€" * 5000)  # 3 bytes each: 10240 would split one
    assert len(cut) == 10_238 and cut.decode("utf-8") == "xy" + "€" * 3412
    with pytest.raises(TypeError):
        _hb.encode_body(42)  # type: ignore[arg-type]


def _raise_chained(depth: int) -> None:
    """Raise an error whose traceback is long: ``depth`` chained causes, each printed."""
    try:
        if depth:
            _raise_chained(depth - 1)
        raise KeyError("root cause")
    except Exception as exc:
        raise ValueError("boom: disk full" if depth == 50 else f"step {depth}") from exc


def test_failure_body_leads_with_type_and_message_then_the_end_of_the_traceback() -> None:
    try:
        _raise_chained(50)
    except ValueError as exc:
        body = _hb.failure_body(exc)
    first, _, rest = body.partition("\n\n")
    assert first == "ValueError: boom: disk full"
    assert rest.startswith("...\n") and len(rest) <= 2000 + 4  # only the innermost frames
    assert rest.rstrip().endswith("ValueError: boom: disk full")

    class JobError(Exception):
        pass

    assert _hb.failure_body(JobError()).startswith(f"{__name__}.{JobError.__qualname__}\n")


def test_redact_hides_the_token() -> None:
    target = _hb.build_target("secret-token-123", "http://h:8080", "start", RID)
    assert _hb.redact(target) == "http://h:8080/api/v1/hb/secr.../start"
    other = _hb.build_target("https://h/hooks/secret-token", "http://x", "success")
    assert "secret" not in _hb.redact(other)
