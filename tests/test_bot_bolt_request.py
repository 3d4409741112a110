"""Slash commands whose text or fields contain "payload" reach their handler (Bolt misread them)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
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
    now = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": slack_signature(body, now),
    }
    response = await web.client.post("/slack/events", data=body, headers=headers)
    assert response.status == 400
    assert await web.queued() == []
