"""The alert's stored shape, read back (pure): what a hash shows, and the delivery body."""

from __future__ import annotations

import json

from relay.webhooks.alert_card import (
    Acknowledge,
    Seed,
    StoredAlert,
    change_json,
    wake_body,
    wake_marker,
)

AT = "2026-11-22T12:00:00+00:00"


def test_a_hash_reads_back_as_the_state_it_shows() -> None:
    fields = {
        "h": "failed",
        "d": "request `r`",
        "act": "1",
        "to": "C1",
        "n": "3",
        "ab": "U1",
        "aa": AT,
        "st": json.dumps([["Paused", "U2", AT]]),
        "v": "4",
        "r": "2",
        "ch": "C1",
        "ts": "1.2",
    }
    stored = StoredAlert.from_hash("m", fields)
    assert stored.state is not None
    assert (stored.state.acked_by, stored.state.failures, stored.state.actionable) == (
        "U1",
        3,
        True,
    )
    assert [(s.what, s.user_id) for s in stored.state.steps] == [("Paused", "U2")]
    assert (stored.channel, stored.message_channel, stored.ts) == ("C1", "C1", "1.2")
    assert stored.to_render() == 4
    assert StoredAlert.from_hash("m", {**fields, "r": "4"}).to_render() is None


def test_bad_or_missing_fields_never_raise() -> None:
    """Nothing to show without a headline; a bad time or step list is left out."""
    assert StoredAlert.from_hash("m", {"v": "x", "ts": "1.2"}).state is None
    assert StoredAlert.from_hash("m", {"v": "2"}).to_render() is None
    odd = StoredAlert.from_hash(
        "m", {"h": "x", "ab": "U1", "aa": "yesterday", "st": "{", "ra": "soon", "n": "-4"}
    )
    assert odd.state is not None
    assert odd.state.acked_by is None  # no time: not shown as acknowledged
    assert odd.state.steps == ()
    assert not odd.state.resolved
    assert odd.state.failures == 1


def test_a_delivery_body_names_its_alert_and_an_old_message_body_does_not() -> None:
    assert wake_marker(wake_body("glider-relay:portfolio:pf_1")) == "glider-relay:portfolio:pf_1"
    assert wake_marker(b'{"channel":"C1","text":"hi"}') is None
    assert wake_marker(b'{"alert":"m","channel":"C1"}') is None
    assert wake_marker(b"not json") is None


def test_a_change_leaves_out_what_it_does_not_carry() -> None:
    """No ``null`` for the Lua step to mistake for a value."""
    assert json.loads(change_json(Acknowledge(user="U1", at=AT))) == {
        "op": "ack",
        "user": "U1",
        "at": AT,
    }
    seeded = Acknowledge(user="U1", at=AT, seed=Seed(h="x", d="y", ch="C1", ts="1.2"))
    assert json.loads(change_json(seeded))["seed"] == {"h": "x", "d": "y", "ch": "C1", "ts": "1.2"}
