"""Slack request signing (heron_common.slack), pure: Slack's documented example, and every way a
request is refused."""

from __future__ import annotations

from heron_common import slack

# The example of Slack's "Verifying requests from Slack" guide.
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = float(TIMESTAMP) + 10


def test_slacks_own_example_verifies() -> None:
    assert slack.sign(SECRET, TIMESTAMP, BODY) == SIGNATURE
    assert slack.verify(SECRET, TIMESTAMP, SIGNATURE, BODY, NOW) is None


def test_a_changed_body_a_wrong_secret_or_signature_is_refused() -> None:
    assert slack.verify(SECRET, TIMESTAMP, SIGNATURE, BODY + b"&x=1", NOW) == "the signature does not match"
    assert slack.verify("another", TIMESTAMP, SIGNATURE, BODY, NOW) == "the signature does not match"
    assert slack.verify(SECRET, TIMESTAMP, SIGNATURE[:-1] + "0", BODY, NOW) == "the signature does not match"
    assert slack.verify(SECRET, TIMESTAMP, "v1=" + SIGNATURE[3:], BODY, NOW) == "the signature does not match"
    assert slack.verify(SECRET, TIMESTAMP, "v0=é", BODY, NOW) == "the signature does not match"


def test_outside_five_minutes_is_refused_either_way() -> None:
    assert slack.verify(SECRET, TIMESTAMP, SIGNATURE, BODY, float(TIMESTAMP) + 300) is None
    stale = slack.verify(SECRET, TIMESTAMP, SIGNATURE, BODY, float(TIMESTAMP) + 301)
    assert stale is not None and "too old" in stale
    assert slack.verify(SECRET, TIMESTAMP, SIGNATURE, BODY, float(TIMESTAMP) - 301) is not None


def test_missing_or_malformed_headers_and_no_secret_are_refused() -> None:
    assert slack.verify(None, TIMESTAMP, SIGNATURE, BODY, NOW) is not None
    assert slack.verify(SECRET, None, SIGNATURE, BODY, NOW) is not None
    assert slack.verify(SECRET, TIMESTAMP, None, BODY, NOW) is not None
    assert slack.verify(SECRET, "1531420618.5", SIGNATURE, BODY, NOW) is not None
    assert slack.verify(SECRET, "٣" * 10, SIGNATURE, BODY, NOW) is not None
    assert slack.verify(SECRET, "9" * 400, SIGNATURE, BODY, NOW) is not None
