"""Slash commands whose text or fields contain "payload" reach their handler (Bolt misread them)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import redis.asyncio as aioredis

from tests.fixtures.slack import slack_signature
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


async def test_payload_field_is_still_read_as_json(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """A signed body with a payload field is parsed as Bolt does (bad JSON: 400, not 500)."""
    web = await web_factory(fake_redis)
    body, now = urlencode({"payload": "{not json"}), int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": slack_signature(body, now),
    }
    response = await web.client.post("/slack/events", data=body, headers=headers)
    assert response.status == 400
    assert await web.queued() == []
