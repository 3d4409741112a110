"""Standard Webhooks signing and secrets, verified by the `standardwebhooks` library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.webhooks.secrets import (
    ROTATION_GRACE_MS,
    InvalidSecret,
    SigningKeys,
    new_secret,
    secret_bytes,
)
from relay.webhooks.signing import sign, signature_header, webhook_headers

BODY = b'{"type":"rebalance.completed","data":{"portfolioId":"pf_1"}}'


def test_new_secret_is_whsec_and_32_random_bytes() -> None:
    """A new secret is whsec_ + base64 of 32 bytes, different every time."""
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_standard_webhooks_library_verifies_our_headers() -> None:
    """A receiver using the standardwebhooks library accepts our signature."""
    secret = new_secret()
    headers = webhook_headers([secret_bytes(secret)], "msg_1", int(time.time()), BODY)
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "rebalance.completed",
        "data": {"portfolioId": "pf_1"},
    }


def test_signature_matches_library_sign() -> None:
    """Our v1 signature is byte-identical to the reference implementation's."""
    secret = new_secret()
    when = datetime(2026, 11, 22, 12, 0, 3, tzinfo=UTC)
    ours = sign(secret_bytes(secret), "msg_x", int(when.timestamp()), BODY)
    assert ours == Webhook(secret).sign("msg_x", when, BODY.decode())


def test_tampered_body_fails_verification() -> None:
    """A changed body no longer verifies."""
    secret = new_secret()
    headers = webhook_headers([secret_bytes(secret)], "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"pf_1", b"pf_2"), headers)


def test_rotation_signs_with_both_secrets_during_grace() -> None:
    """During the 24 h grace, receivers holding the old or the new secret both verify."""
    old = new_secret()
    now = int(time.time() * 1000)
    keys = SigningKeys(old).rotated(new_secret(), now)
    active = keys.active(now + 1000)
    assert len(active) == 2
    header = webhook_headers(active, "msg_2", int(time.time()), BODY)
    assert len(header["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, header)
    Webhook(keys.current).verify(BODY, header)


def test_second_rotation_keeps_the_first_secret_in_its_window() -> None:
    """Two rotations in a day: the original, the middle and the new secret all sign, and
    each earlier one stops at the end of its own 24 h."""
    first, second, third = new_secret(), new_secret(), new_secret()
    keys = SigningKeys(first).rotated(second, 0).rotated(third, 3_600_000)
    header = webhook_headers(keys.active(7_200_000), "msg_4", int(time.time()), BODY)
    for secret in (first, second, third):
        Webhook(secret).verify(BODY, header)
    assert keys.active(ROTATION_GRACE_MS) == [secret_bytes(third), secret_bytes(second)]
    assert keys.active(ROTATION_GRACE_MS + 3_600_000) == [secret_bytes(third)]


def test_old_secret_stops_signing_after_grace() -> None:
    """After 24 h only the new secret signs, so the old one no longer verifies."""
    old = new_secret()
    keys = SigningKeys(old).rotated(new_secret(), 0)
    active = keys.active(ROTATION_GRACE_MS)
    assert active == [secret_bytes(keys.current)]
    header = webhook_headers(active, "msg_3", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, header)


@pytest.mark.parametrize(
    "secret",
    [
        "abc",
        "whsec_not*base64",
        "whsec_" + base64.b64encode(b"x" * 16).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    """Secrets without the prefix, not base64, or outside 24-64 bytes raise InvalidSecret."""
    with pytest.raises(InvalidSecret):
        secret_bytes(secret)


def test_signature_header_needs_a_secret() -> None:
    """Signing with no secret at all is a programming error, not an empty header."""
    with pytest.raises(ValueError, match="at least one"):
        signature_header([], "msg", 1, BODY)
