"""Redaction by every door: where Glider's text enters, and where webhook and admin text leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from relay.admin.common import object_response
from relay.core.bounds import clip
from relay.core.events import EventError
from relay.core.redact import (
    FRAGMENT_MIN_CHARS,
    REDACTED,
    redact,
    redact_bytes,
    register_secrets,
    unregister_secrets,
)
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


def _pieces(text: str) -> list[str]:
    """The pieces of SECRET (past its public ``gldr_sk_``) of FRAGMENT_MIN_CHARS found in text."""
    private = SECRET.removeprefix("gldr_sk_")
    forms = {private, json.dumps(private)[1:-1]}
    width = FRAGMENT_MIN_CHARS
    return sorted(
        {f[i : i + width] for f in forms for i in range(len(f) - width + 1)}
        & {text[i : i + width] for i in range(len(text) - width + 1)}
    )


def test_a_secret_cut_before_redaction_loses_its_start_too() -> None:
    """The start a cut left, before the ellipsis (as is or in JSON) or at the end, goes."""
    cut = clip(f"key: {SECRET} end", 20)
    assert redact(cut) == f"key: {REDACTED}…"
    assert redact(json.dumps({"m": cut})) == json.dumps({"m": f"key: {REDACTED}…"})
    assert redact(f"raw {SECRET[:12]}") == f"raw {REDACTED}"
    assert redact("ordinary words, cut…") == "ordinary words, cut…"
    too_short = f"too short to tell: {SECRET[: FRAGMENT_MIN_CHARS - 1]}…"
    assert redact(too_short) == too_short
    log_field = json.dumps({"error": f"x-api-key: {SECRET}"[:24], "level": "INFO"})
    assert json.loads(redact(log_field)) == {"error": f"x-api-key: {REDACTED}", "level": "INFO"}


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    before=st.text(max_size=60).filter(lambda text: not _pieces(text)),
    after=st.text(max_size=20).filter(lambda text: not _pieces(text)),
    limit=st.integers(1, 120),
    hard=st.booleans(),
    as_json=st.booleans(),
)
def test_no_cut_before_redaction_keeps_a_telling_piece(
    before: str, after: str, limit: int, hard: bool, as_json: bool
) -> None:
    """Whatever the text and wherever a cut (with or without ``…``) lands: no piece survives,
    and JSON stays JSON."""
    text = f"{before}{SECRET}{after}"
    cut = text[:limit] if hard else clip(text, limit)
    shown = json.dumps({"m": cut}) if as_json else cut
    assert _pieces(redact(shown)) == []
    if as_json:
        json.loads(redact(shown))
