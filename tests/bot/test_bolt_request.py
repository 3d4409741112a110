"""Slash commands whose text or fields contain "payload" reach their handler (Bolt misread them)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis

from tests.fixtures.slack import signed_event, signed_headers
from tests.fixtures.web import WebFactory


async def test_reason_saying_payload_is_queued(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """/pause pf_1 payload migration is acknowledged and queued with its reason."""
    web = await web_factory(fake_redis)
    ack = await web.command("/pause", "pf_1 payload migration")
    assert "Queued" in ack["text"]
    [queued] = await web.queued()
    assert (queued.portfolio_id, queued.reason) == ("pf_1", "payload migration")


async def test_user_named_payload_is_served(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """A user whose name contains "payload" gets the usual ack, not "unhandled request"."""
    web = await web_factory(fake_redis)
    ack = await web.command("/rebalance", "pf_2", user_name="payloadbot")
    assert "Queued" in ack["text"]
    [queued] = await web.queued()
    assert queued.requested_by.user_name == "payloadbot"


@pytest.mark.parametrize(
    "body",
    [urlencode({"payload": "{not json"}), '{"a": ' + "[" * 3000 + "]" * 3000 + "}"],
    ids=["bad-payload-json", "too-deep-json"],
)
async def test_signed_bodies_bolt_cannot_parse_are_400(
    web_factory: WebFactory, fake_redis: aioredis.Redis, body: str
) -> None:
    """A signed body Bolt cannot parse (bad payload JSON, JSON too deep) is a 400, not a 500."""
    web = await web_factory(fake_redis)
    response = await web.client.post("/slack/events", data=body, headers=signed_headers(body))
    assert response.status == 400
    assert await web.queued() == []


def _form(payload: object) -> str:
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.parametrize(
    "body",
    [
        "payload=1",
        "payload=null",
        _form([1, 2]),
        _form("text"),
        _form({"type": "block_actions", "actions": []}),
        _form({"type": "block_actions"}),
        _form({"type": "block_actions", "actions": [1]}),
        _form({"type": "block_actions", "team": [], "user": 3, "actions": [{}]}),
        _form({"type": "block_actions", "user": {"id": "U1"}, "actions": [{}]}),
        _form({"actions": [{"action_id": "a"}]}),
        json.dumps({"type": "block_actions", "actions": []}),
        json.dumps({"team": [], "user": 1}),
        json.dumps({"type": "x", "command": "/rebalance", "text": 3, "user_id": []}),
    ],
    ids=[
        "payload-1",
        "payload-null",
        "payload-list",
        "payload-string",
        "no-actions",
        "actions-missing",
        "action-not-object",
        "team-not-object",
        "action-without-id",
        "no-type",
        "json-no-actions",
        "json-no-type",
        "json-command-fields-not-text",
    ],
)
async def test_signed_odd_payloads_are_answered_not_500(
    web_factory: WebFactory, fake_redis: aioredis.Redis, body: str
) -> None:
    """Signed payloads of the wrong shape get a 400 (never a 500) and change nothing."""
    web = await web_factory(fake_redis)
    response = await web.client.post("/slack/events", data=body, headers=signed_headers(body))
    assert response.status == 400
    assert await fake_redis.dbsize() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"event": "x"},
        {"event": ["app_home_opened"]},
        {"authorizations": "x"},
        {"authorizations": ["x"]},
    ],
    ids=["event-text", "event-list", "authorizations-text", "authorizations-of-text"],
)
async def test_a_signed_event_of_the_wrong_shape_is_a_400_that_changes_nothing(
    web_factory: WebFactory, fake_redis: aioredis.Redis, fields: dict[str, object]
) -> None:
    """An Events API body whose ``event`` is not an object (or whose ``authorizations``
    are not objects) is unparseable, not a 500 from inside Bolt."""
    web = await web_factory(fake_redis)
    request = signed_event({"type": "event_callback", "team_id": "T1", **fields})
    response = await web.client.post("/slack/events", data=request.body, headers=request.headers)
    assert response.status == 400, await response.text()
    assert await response.json() == {"error": "invalid request"}
    assert web.slack.calls == []
    assert await fake_redis.keys("*") == []
