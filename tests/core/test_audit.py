"""Audit entries: bounded text, ``aud_`` ids, the API's camelCase form."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from relay.core.audit import DETAIL_MAX, NAME_MAX, AuditAction, AuditActor, AuditEntry, new_entry
from relay.core.redact import register_secrets, unregister_secrets


@given(st.text(max_size=5_000), st.text(max_size=500))
def test_detail_and_names_are_cut_whatever_their_length(detail: str, name: str) -> None:
    """Any detail and Slack name fit their bounds; the entry still builds."""
    entry = new_entry(
        AuditAction.COMMAND_REFUSED,
        AuditActor.slack("T1", "U1", name),
        portfolio_id="pf_x",
        detail=detail,
    )
    assert len(entry.detail or "") <= DETAIL_MAX
    assert len(entry.actor.user_name or "") <= NAME_MAX


def test_the_stored_form_is_the_api_form() -> None:
    """``to_json`` is camelCase with the contract's field names; an admin actor is exactly
    ``{"source": "admin"}``, a Slack one names team, user id and user name."""
    entry = new_entry(
        AuditAction.SUBSCRIPTION_DELETED, AuditActor(source="admin"), subscription_id="sub_1"
    )
    body = json.loads(entry.to_json())
    assert body["id"].startswith("aud_")
    assert body["action"] == "subscription.deleted"
    assert body["actor"] == {"source": "admin"}
    assert body["subscriptionId"] == "sub_1"
    slack = new_entry(AuditAction.COMMAND_RECEIVED, AuditActor.slack(None, "U1", "alice"))
    assert json.loads(slack.to_json())["actor"] == {
        "source": "slack",
        "teamId": None,
        "userId": "U1",
        "userName": "alice",
    }
    assert AuditEntry.model_validate_json(slack.to_json()) == slack


def test_text_and_ids_are_redacted() -> None:
    """A configured secret in any text field never reaches the stored form."""
    secret = "s3cret-value-for-audit"
    register_secrets([secret])
    try:
        entry = new_entry(
            AuditAction.DELIVERIES_RECOVERED,
            AuditActor.slack("T1", secret, f"name {secret}"),
            subscription_id=secret,
            detail=f"since {secret}",
        )
    finally:
        unregister_secrets([secret])
    assert secret not in entry.to_json()
    assert "[REDACTED]" in (entry.detail or "")
