"""docs/contract.md §10 admin routes: GET /v1/event-types and POST /v1/subscriptions/{id}/test."""

from __future__ import annotations

import json

import jsonschema  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from relay.core.clock import epoch_ms
from relay.core.events import EventError, EventType
from relay.store.delivery_stats import last_hour
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionPatch, SubscriptionStore
from tests.fixtures.dispatch import delivery_in, dispatching, event
from tests.fixtures.webhooks import AUTH, ClientFactory, Receiver, admin_client


async def test_event_types_list_every_type_with_a_schema_real_bodies_satisfy(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """Every SPEC type and relay.test is listed; real event bodies validate against their schema."""
    client = await admin_client(aiohttp_client, fake_redis)
    response = await client.get("/event-types", headers=AUTH)
    assert response.status == 200
    listed = await response.json()
    assert listed["nextCursor"] is None
    by_type = {item["type"]: item for item in listed["data"]}
    assert set(by_type) == {t.value for t in EventType} | {"relay.test"}
    failed = event(EventType.FAILED, error=EventError(code="glider_failed", message="no route"))
    schema = by_type["rebalance.failed"]["schema"]
    jsonschema.validate(json.loads(failed.body()), schema)
    wrong_type = {**json.loads(failed.body()), "type": "rebalance.completed"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong_type, schema)
    assert (await client.get("/event-types")).status == 401


async def test_test_event_is_delivered_signed_through_the_dispatcher(
    any_redis: aioredis.Redis, aiohttp_client: ClientFactory, receiver: Receiver
) -> None:
    """POST /test answers 202 with the delivery; the receiver gets a verifiable relay.test."""
    sub = await SubscriptionStore(any_redis).create(
        SubscriptionCreate(url=receiver.url("/t"), events=["rebalance.completed"])
    )
    assert sub.secret is not None
    client = await admin_client(aiohttp_client, any_redis, allow_private=True)
    async with dispatching(any_redis):
        response = await client.post(f"/subscriptions/{sub.id}/test", headers=AUTH)
        assert response.status == 202, await response.text()
        queued = await response.json()
        [request] = await receiver.wait_for("/t")
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    body = Webhook(sub.secret).verify(request.body, request.headers)
    assert body["type"] == "relay.test"
    assert body["data"]["subscriptionId"] == sub.id
    assert queued["id"] == done.id
    assert queued["eventType"] == "relay.test"
    assert request.headers["webhook-id"] == queued["webhookId"]
    minutes = await last_hour(any_redis, now_ms=epoch_ms())
    assert sum(m.succeeded for m in minutes) == 1


async def test_test_event_refused_for_unknown_or_disabled_subscription(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """404 for no such subscription, 409 for a disabled one; nothing is queued either way."""
    store = SubscriptionStore(fake_redis)
    sub = await store.create(SubscriptionCreate(url="https://hooks.partner.test/x", events=["*"]))
    await store.update(sub.id, SubscriptionPatch(enabled=False))
    client = await admin_client(aiohttp_client, fake_redis)
    missing = await client.post("/subscriptions/sub_nope/test", headers=AUTH)
    assert missing.status == 404
    disabled = await client.post(f"/subscriptions/{sub.id}/test", headers=AUTH)
    assert disabled.status == 409
    assert (await disabled.json())["error"]["code"] == "subscription_disabled"
    listed = await (await client.get("/deliveries", headers=AUTH)).json()
    assert listed["data"] == []
