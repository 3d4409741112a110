"""Audit entries: bounded text, ``aud_`` ids, the API's camelCase form."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from relay.core.audit import DETAIL_MAX, NAME_MAX, AuditAction, AuditActor, new_entry


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
    """``to_json`` is camelCase with the contract's field names."""
    entry = new_entry(
        AuditAction.SUBSCRIPTION_DELETED, AuditActor(source="admin"), subscription_id="sub_1"
    )
    body = json.loads(entry.to_json())
    assert body["id"].startswith("aud_")
    assert body["action"] == "subscription.deleted"
    assert body["actor"] == {"source": "admin", "teamId": None, "userId": None, "userName": None}
    assert body["subscriptionId"] == "sub_1"
