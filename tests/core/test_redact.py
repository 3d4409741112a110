"""Redaction by every door: where Glider's text enters, and where webhook and admin text leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from relay.admin.common import object_response
from relay.core.events import EventError
from relay.core.redact import REDACTED, redact, redact_bytes, register_secrets, unregister_secrets
from relay.glider.errors import ServerError
from relay.glider.models import Operation
from relay.webhooks.claim_step import Claimed, Target
from relay.webhooks.models import TargetKind
from relay.webhooks.secrets import SigningKeys, new_secret
from relay.webhooks.sender import Sender, make_session
from tests.fixtures.webhooks import Receiver

SECRET = 'gldr_sk_door&<"\\test_0123'


@pytest.fixture(autouse=True)
def secret() -> Iterator[str]:
    register_secrets([SECRET])
    yield SECRET
    unregister_secrets([SECRET])


def test_every_spelling_of_a_secret_is_redacted() -> None:
    """As is, JSON-escaped (both ways) and Slack-escaped: each form becomes [REDACTED]."""
    slack = SECRET.replace("&", "&amp;").replace("<", "&lt;")
    for form in (SECRET, json.dumps(SECRET)[1:-1], slack, json.dumps(slack)[1:-1]):
        assert redact(f"a {form} b") == f"a {REDACTED} b"


def test_glider_text_is_redacted_where_it_enters() -> None:
    """A Glider error, or an operation's error, that echoes the key holds it no more."""
    assert SECRET not in ServerError(f"bad key {SECRET}", code=SECRET).message
    assert ServerError("x", code=SECRET).code == REDACTED
    wire = {"operationId": "op", "portfolioId": "pf", "state": "failed", "error": SECRET}
    assert Operation.model_validate(wire).error == REDACTED
    assert EventError(code="c", message=f"key {SECRET}").message == f"key {REDACTED}"


def test_redact_bytes_keeps_a_clean_body_as_it_is() -> None:
    """A body without a secret is returned unchanged (the same object)."""
    body = b'{"type":"rebalance.completed"}'
    assert redact_bytes(body) is body
    assert redact_bytes(json.dumps({"m": SECRET}).encode()) == b'{"m": "[REDACTED]"}'


async def test_a_stored_body_with_a_secret_leaves_redacted_and_correctly_signed(
    receiver: Receiver,
) -> None:
    """Defence at the door: a body that somehow holds a secret is redacted before signing."""
    secret = new_secret()
    target = Target(
        id="sub_x",
        kind=TargetKind.WEBHOOK,
        url=receiver.url("hook"),
        enabled=True,
        cap=1,
        signing=SigningKeys(current=secret),
        failing_since_ms=None,
    )
    body = json.dumps({"type": "rebalance.failed", "data": {"error": SECRET}}).encode()
    claimed = Claimed("dlv_1", "msg_1", body, 1, "rebalance.failed")
    sender = Sender(make_session(allow_private=True), allow_private=True)
    try:
        result = await sender.attempt(target, claimed)
    finally:
        await sender.close()
    assert result.attempt.statusCode == 200
    (received,) = await receiver.wait_for("hook")
    assert SECRET.encode() not in received.body
    verified = Webhook(secret).verify(received.body, received.headers)
    assert verified["data"]["error"] == REDACTED


def test_the_admin_api_answers_redacted() -> None:
    """An admin answer never carries a configured secret, whatever the record held."""
    response = object_response(EventError.model_construct(code="c", message=f"k {SECRET}"))
    assert isinstance(response.body, bytes)
    assert SECRET.encode() not in response.body
    assert json.loads(response.body)["message"] == f"k {REDACTED}"
