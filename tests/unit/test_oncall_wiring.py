"""The pure pieces around the on-call core: acknowledge tokens, Slack's request signature, what a
page says on each channel, the email a page becomes, and the on-call settings."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heron_common import mail, slack
from heron_common.oncall import ack
from heron_common.settings import Settings, SettingsError
from heron_notifier import paging_render
from heron_notifier.paging_render import Page

KEY = b"k" * 32
CLAIMS = ack.AckClaims(str(uuid.UUID(int=7)), 42, 3, "alice@example.com", 2_000)

# --- acknowledge tokens ----------------------------------------------------------------------


def test_a_token_verifies_until_it_expires_and_only_with_its_key() -> None:
    token = ack.sign(KEY, CLAIMS)
    assert token.isascii() and "/" not in token and "+" not in token  # safe in a URL path
    assert ack.verify(KEY, token, 1_999.0) == CLAIMS
    with pytest.raises(ack.AckLinkError) as expired:
        ack.verify(KEY, token, 2_000.0)
    assert expired.value.expired
    with pytest.raises(ack.AckLinkError) as other:
        ack.verify(b"x" * 32, token, 0.0)
    assert not other.value.expired


def test_changing_any_claim_breaks_the_signature() -> None:
    import base64
    import json

    token = ack.sign(KEY, CLAIMS)
    claims, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    body["i"] = 43  # another incident
    altered = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
    with pytest.raises(ack.AckLinkError, match="not valid"):
        ack.verify(KEY, f"{altered}.{mac}", 0.0)


@given(st.text(max_size=300))
def test_any_text_is_refused_with_an_ack_link_error_only(text: str) -> None:
    with pytest.raises(ack.AckLinkError):
        ack.verify(KEY, text, 0.0)


# --- Slack's v0 signature --------------------------------------------------------------------

# Slack's documented example ("Verifying requests from Slack").
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_HEADERS = {
    "X-Slack-Request-Timestamp": "1531420618",
    "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
}


def test_slacks_own_example_verifies() -> None:
    slack.verify_headers(SLACK_SECRET, SLACK_HEADERS, SLACK_BODY, now=1531420618 + 10)
    lowered = {k.lower(): v for k, v in SLACK_HEADERS.items()}
    slack.verify_headers(SLACK_SECRET, lowered, SLACK_BODY, now=1531420618)


@pytest.mark.parametrize(
    ("headers", "body", "now", "why"),
    [
        (SLACK_HEADERS, SLACK_BODY + b"&x=1", 1531420618, "does not match"),
        ({**SLACK_HEADERS, "X-Slack-Signature": "v0=" + "0" * 64}, SLACK_BODY, 1531420618, "does not match"),
        (SLACK_HEADERS, SLACK_BODY, 1531420618 + 301, "five minutes"),
        (SLACK_HEADERS, SLACK_BODY, 1531420618 - 301, "five minutes"),
        ({"X-Slack-Signature": SLACK_HEADERS["X-Slack-Signature"]}, SLACK_BODY, 1531420618, "required"),
        ({**SLACK_HEADERS, "X-Slack-Request-Timestamp": "1e9"}, SLACK_BODY, 1531420618, "unix seconds"),
        ({**SLACK_HEADERS, "X-Slack-Signature": "v0=é"}, SLACK_BODY, 1531420618, "does not match"),
    ],
)
def test_anything_else_is_refused(headers, body, now, why) -> None:
    with pytest.raises(slack.SlackSignatureError, match=why):
        slack.verify_headers(SLACK_SECRET, headers, body, now)


# --- what a page says ------------------------------------------------------------------------


def page(reason: str = "primary", **incident: object) -> Page:
    view = {
        "id": 42,
        "title": "Database CPU is alerting",
        "service": "API",
        "environment": None,
        "opened_at": "2026-03-02T18:00:00Z",
        "details": {"body": "server 1 is on fire"},
        **incident,
    }
    return Page(
        step_id=str(uuid.UUID(int=9)),
        reason=reason,
        email="alice@example.com",
        name="Alice",
        incident=view,
        project={"id": 3, "name": "MyApp"},
        ack_url="https://heron.example.com/ack/TOKEN",
        ack_token="TOKEN",
        due_at=1_772_474_400.0,
    )


def test_the_email_says_why_and_carries_the_link() -> None:
    assert paging_render.subject(page()) == "[Heron] Database CPU is alerting"
    assert paging_render.subject(page("repeat")).endswith("(reminder)")
    assert paging_render.subject(page("escalation")).endswith("(escalated)")
    text = paging_render.email_text(page("escalation"))
    assert "escalated to you" in text and "Service: API" in text and "server 1 is on fire" in text
    assert "https://heron.example.com/ack/TOKEN" in text
    message = mail.build("heron@example.com", "alice@example.com", "[Heron] x\r\nBcc: evil@x.io", text, message_id="s1")
    assert message["Message-ID"] == "<s1@example.com>" and message["Subject"] == "[Heron] x Bcc: evil@x.io"
    assert message["Auto-Submitted"] == "auto-generated"


def test_the_slack_message_has_the_acknowledge_button() -> None:
    message = paging_render.slack_message(page(), channel="U024BE7LH")
    assert message["channel"] == "U024BE7LH" and "Database CPU is alerting" in message["text"]
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    [button] = actions["elements"]
    assert (button["action_id"], button["value"]) == ("heron_acknowledge", "TOKEN")
    from heron_ingest.oncall_ack import ACTION_ID

    assert button["action_id"] == ACTION_ID  # what ingest's interactivity endpoint looks for
    long = paging_render.slack_message(page(details={"body": "x" * 5000}))
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in long["blocks"])


def test_the_webhook_payload() -> None:
    payload = paging_render.webhook_payload(page())
    assert payload["topic"] == "oncall.page" and payload["created"] == "2026-03-02T18:00:00+00:00"
    assert payload["data"]["page"]["acknowledge_url"] == "https://heron.example.com/ack/TOKEN"
    assert payload["data"]["incident"]["id"] == 42 and payload["data"]["project"]["name"] == "MyApp"


# --- settings --------------------------------------------------------------------------------


def test_on_call_settings(tmp_path) -> None:
    secret = tmp_path / "smtp"
    secret.write_text("s3cret\n")
    s = Settings.from_env(
        {
            "HERON_SMTP_HOST": "mail.example.com",
            "HERON_SMTP_PORT": "465",
            "HERON_SMTP_PASSWORD_FILE": str(secret),
            "HERON_SMTP_STARTTLS": "false",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "abc",
            "HERON_PUBLIC_URL": "https://heron.example.com/",
            "HERON_PAGE_RETRY_SCHEDULE": "0,1,2",
        }
    )
    assert (s.smtp_host, s.smtp_port, s.smtp_password, s.smtp_starttls) == ("mail.example.com", 465, "s3cret", False)
    assert s.public_url == "https://heron.example.com" and s.page_retry_schedule == (0.0, 1.0, 2.0)
    shown = s.public()
    assert shown["smtp_password"] == shown["slack_bot_token"] == shown["slack_signing_secret"] == "***"
    assert "s3cret" not in repr(s) and "xoxb-1" not in repr(s)
    for env in ({"HERON_SMTP_STARTTLS": "maybe"}, {"HERON_SHIFT_HORIZON_DAYS": "7"}, {"HERON_PUBLIC_URL": "ftp://x"}):
        with pytest.raises(SettingsError):
            Settings.from_env(env)
