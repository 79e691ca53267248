from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from heron import webhooks
from heron.webhooks import WebhookVerificationError

BODY = json.dumps({"type": "incident.opened", "data": {"id": "inc_1", "service": "billing"}}).encode()
SECRET = "plain-secret"
WHSEC = "whsec_" + base64.b64encode(b"\x00\x01binary-key\xff").decode()


def heron_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def standard_headers(key: bytes, body: bytes, msg_id: str = "msg_1", ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig}"}


# -- Heron-Signature: carries no time, so only accepted when asked for ----------------------------


def test_a_capture_replayed_an_hour_later_without_its_timestamp_is_refused() -> None:
    # What a delivery carries; an attacker who captured it an hour ago strips the webhook-* headers.
    captured = {**standard_headers(SECRET.encode(), BODY, ts=int(time.time()) - 3600)}
    captured["Heron-Signature"] = heron_signature(SECRET, BODY)
    stripped = {k: v for k, v in captured.items() if not k.startswith("webhook-")}
    with pytest.raises(WebhookVerificationError, match="can be replayed"):
        webhooks.verify(SECRET, BODY, stripped)
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhooks.verify(SECRET, BODY, captured)
    # Opting in accepts it: the documented, replayable legacy check.
    assert webhooks.verify(SECRET, BODY, stripped, allow_untimestamped=True)["type"] == "incident.opened"


def test_heron_signature_good() -> None:
    headers = {"Heron-Signature": heron_signature(SECRET, BODY)}
    payload = webhooks.verify(SECRET, BODY, headers, allow_untimestamped=True)
    assert payload["data"]["id"] == "inc_1"


def test_heron_signature_header_name_is_case_insensitive_and_body_may_be_str() -> None:
    headers = {"HERON-SIGNATURE": heron_signature(SECRET, BODY)}
    assert webhooks.verify(SECRET, BODY.decode(), headers, allow_untimestamped=True)["type"] == "incident.opened"


def test_heron_signature_tampered_body() -> None:
    headers = {"Heron-Signature": heron_signature(SECRET, BODY)}
    with pytest.raises(WebhookVerificationError, match="does not match"):
        webhooks.verify(SECRET, BODY.replace(b"inc_1", b"inc_2"), headers, allow_untimestamped=True)


def test_heron_signature_wrong_secret() -> None:
    headers = {"Heron-Signature": heron_signature("other-secret", BODY)}
    with pytest.raises(WebhookVerificationError, match="does not match"):
        webhooks.verify(SECRET, BODY, headers, allow_untimestamped=True)


def test_heron_signature_garbage() -> None:
    with pytest.raises(WebhookVerificationError, match="base64"):
        webhooks.verify(SECRET, BODY, {"Heron-Signature": "not base64 at all!"}, allow_untimestamped=True)


# -- Standard Webhooks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "key"),
    [(SECRET, SECRET.encode()), (WHSEC, b"\x00\x01binary-key\xff")],
    ids=["plain-secret", "whsec-secret"],
)
def test_standard_good(secret: str, key: bytes) -> None:
    payload = webhooks.verify(secret, BODY, standard_headers(key, BODY))
    assert payload["data"]["service"] == "billing"


def test_standard_accepts_any_mapping_and_several_signatures() -> None:
    key = SECRET.encode()
    headers = standard_headers(key, BODY)
    good = headers["webhook-signature"]
    headers = {
        "Webhook-Id": headers["webhook-id"],
        "WEBHOOK-TIMESTAMP": headers["webhook-timestamp"],
        # key rotation: several signatures, the valid one not first; unknown versions ignored
        "Webhook-Signature": f"v1,{base64.b64encode(b'x' * 32).decode()} v1a,whatever {good}",
    }
    assert webhooks.verify(SECRET, BODY, headers)["type"] == "incident.opened"


def test_standard_tampered_body() -> None:
    headers = standard_headers(SECRET.encode(), BODY)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        webhooks.verify(SECRET, BODY + b" ", headers)


def test_standard_tampered_id_or_timestamp() -> None:
    headers = standard_headers(SECRET.encode(), BODY)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        webhooks.verify(SECRET, BODY, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError, match="does not match"):
        webhooks.verify(SECRET, BODY, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)})


def test_standard_wrong_secret() -> None:
    headers = standard_headers(b"other-secret", BODY)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        webhooks.verify(SECRET, BODY, headers)


def test_whsec_secret_is_base64_decoded_not_used_verbatim() -> None:
    headers = standard_headers(WHSEC.encode(), BODY)  # signed with the literal string: wrong
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(WHSEC, BODY, headers)


def test_standard_stale_and_future_timestamps() -> None:
    key = SECRET.encode()
    old = standard_headers(key, BODY, ts=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhooks.verify(SECRET, BODY, old)
    future = standard_headers(key, BODY, ts=int(time.time()) + 3600)
    with pytest.raises(WebhookVerificationError, match="future"):
        webhooks.verify(SECRET, BODY, future)
    # a larger tolerance accepts the old one
    assert webhooks.verify(SECRET, BODY, old, tolerance=3600)


def test_standard_takes_precedence_over_heron_signature() -> None:
    headers = {
        **standard_headers(SECRET.encode(), BODY, ts=int(time.time()) - 10_000),  # stale
        "Heron-Signature": heron_signature(SECRET, BODY),  # valid, but does not rescue it
    }
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhooks.verify(SECRET, BODY, headers)
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhooks.verify(SECRET, BODY, headers, allow_untimestamped=True)


def test_missing_or_malformed_headers() -> None:
    with pytest.raises(WebhookVerificationError, match="missing signature headers"):
        webhooks.verify(SECRET, BODY, {})
    with pytest.raises(WebhookVerificationError, match="webhook-id"):
        webhooks.verify(SECRET, BODY, {"webhook-signature": "v1,abc"})
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        webhooks.verify(SECRET, BODY, {"webhook-id": "m", "webhook-timestamp": "soon", "webhook-signature": "v1,a"})
    with pytest.raises(WebhookVerificationError, match="no 'v1"):
        ts = str(int(time.time()))
        webhooks.verify(SECRET, BODY, {"webhook-id": "m", "webhook-timestamp": ts, "webhook-signature": "v2,a"})


def test_valid_signature_on_non_json_body() -> None:
    body = b"not json"
    with pytest.raises(WebhookVerificationError, match="not JSON"):
        webhooks.verify(SECRET, body, {"Heron-Signature": heron_signature(SECRET, body)}, allow_untimestamped=True)


def test_bad_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        webhooks.verify("whsec_%%%", BODY, {})
    with pytest.raises(TypeError):
        webhooks.verify("", BODY, {})


def test_sign_round_trips() -> None:
    assert webhooks.verify(WHSEC, BODY, webhooks.sign(WHSEC, BODY, msg_id="msg_9"))
    headers = webhooks.sign(SECRET, BODY)  # both schemes, like a real delivery
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature", "Heron-Signature"}
    assert headers["Heron-Signature"] == heron_signature(SECRET, BODY)
    assert webhooks.verify(SECRET, BODY, headers)
    old = webhooks.sign(SECRET, BODY, timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhooks.verify(SECRET, BODY, old)
