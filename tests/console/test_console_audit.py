"""Every console action writes the audit entry its admin API twin writes, as actor console.

Both doors run the same functions (relay/admin/*); only the app's audit actor differs.
Each action is done once through ``/v1`` and once through the console form, on twin
subscriptions, and the two entries are compared with their own ids taken out.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from relay.core.ids import ulid
from relay.store import dead_letters, keys
from relay.store.audit import AuditFilter, AuditStore
from relay.store.streams import StreamConsumer
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionStore
from tests.console.support import TOKEN, Client, post_form, sign_in
from tests.fixtures.dead_letters import given_up
from tests.fixtures.web import WebFactory
from tests.fixtures.worker import take_command

AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "https://93.184.216.34/hook"
IDS = re.compile(r"\b(?:sub|dlv|evt|aud|req)_[0-9A-Za-z]+|\b\d{10,}-\d+\b")


async def _entries(redis: aioredis.Redis) -> list[dict[str, Any]]:
    entries, _ = await AuditStore(redis).page(AuditFilter(), limit=500)
    return [e.model_dump(mode="json", by_alias=True) for e in entries]


async def _new_entry(redis: aioredis.Redis, seen: int) -> dict[str, Any]:
    """The one entry appended since the log held ``seen`` entries."""
    entries = await _entries(redis)
    assert len(entries) == seen + 1, entries[: len(entries) - seen]
    return entries[0]  # newest first


def _shape(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry without what differs between twins: its id and time, and ids in it."""
    return {
        "action": entry["action"],
        "actor": entry["actor"],
        "detail": IDS.sub("<id>", entry["detail"] or ""),
        "subscription": entry["subscriptionId"] is not None,
        "request": entry["requestId"] is not None,
    }


async def _seed_dead(redis: aioredis.Redis, sid: str, n: int) -> list[str]:
    """``n`` dead deliveries of ``sid``, laid out as the scripts lay them out."""
    now, ids = int(time.time() * 1000), []
    for i in range(n):
        did = "dlv_" + ulid(now - 1000 + i)
        await redis.hset(
            keys.delivery(did),
            mapping={
                "id": did,
                "subscriptionId": sid,
                "eventId": "evt_1",
                "eventType": "rebalance.completed",
                "webhookId": "msg_" + did[4:],
                "body": "{}",
                "status": DeliveryStatus.DEAD.value,
                "createdAt": now,
                "tries": 0,
                "n": 0,
            },
        )
        for index in (
            keys.DELIVERIES,
            keys.deliveries_by_status(DeliveryStatus.DEAD),
            keys.subscription_deliveries(sid),
            keys.subscription_deliveries(sid, DeliveryStatus.DEAD),
        ):
            await redis.zadd(index, {did: 0})
        ids.append(did)
    return ids


async def _dead_command(redis: aioredis.Redis, again: bool) -> str:
    """The dead letter of the stuck command (``again``: after it was replayed, given up on
    once more by the executor)."""
    if again:
        entry = await take_command(redis)
        consumer = StreamConsumer(
            redis,
            keys.COMMAND_STREAM,
            keys.COMMANDS_GROUP,
            "w1",
            _never,
            dead_stream=keys.COMMANDS_DEAD,
        )
        await consumer.dead_letter(entry, "delivered 6 times (max 5); last error: Boom")
    letters, _ = await dead_letters.page(redis, stream=None, cursor=None, limit=10)
    return next(d.id for d in letters if d.stream.value == "commands")


async def _never(_: object) -> None:
    raise AssertionError("not run")


async def _api(client: Client, method: str, path: str, body: Any = None) -> None:
    answer = await client.request(method, f"/v1{path}", json=body, headers=AUTH)
    assert answer.status < 300, await answer.text()


async def test_each_console_action_audits_like_its_api_twin_as_console(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """create, edit, disable, enable, rotate, test, portal-link, replay, recover, dead-letter
    replay and delete: the same entry either way, actor admin through /v1, console here."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    await sign_in(client)
    store = SubscriptionStore(fake_redis)
    await given_up(fake_redis)
    since = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    seen = len(await _entries(fake_redis))

    async def twin(api: Any, console: Any) -> None:
        nonlocal seen
        await api
        via_api = await _new_entry(fake_redis, seen)
        await console
        via_console = await _new_entry(fake_redis, seen + 1)
        seen += 2
        pairs.append((via_api, via_console))

    body = {"url": URL, "events": ["rebalance.failed"], "description": "twin"}
    await twin(
        _api(client, "POST", "/subscriptions", body),
        post_form(
            client,
            "/console/subscriptions",
            "/console/subscriptions",
            url=URL,
            events="rebalance.failed",
            description="twin",
        ),
    )
    [second, first] = [s.id for s in (await store.page(cursor=None, limit=5))[0]]
    page = f"/console/subscriptions/{second}"
    sub_api, sub_console = f"/subscriptions/{first}", page
    await twin(
        _api(client, "PATCH", sub_api, {"description": "changed"}),
        post_form(client, page, f"{page}/edit", description="changed"),
    )
    for enabled, verb in ((False, "disable"), (True, "enable")):
        await twin(
            _api(client, "PATCH", sub_api, {"enabled": enabled}),
            post_form(client, page, f"{sub_console}/{verb}"),
        )
    for verb in ("rotate-secret", "test", "portal-link"):
        await twin(
            _api(client, "POST", f"{sub_api}/{verb}", {} if verb == "portal-link" else None),
            post_form(client, page, f"{sub_console}/{verb}"),
        )
    api_dead, console_dead = (
        await _seed_dead(fake_redis, first, 2),
        await _seed_dead(fake_redis, second, 2),
    )
    await twin(
        _api(client, "POST", f"/deliveries/{api_dead[0]}/replay"),
        post_form(
            client,
            f"/console/deliveries/{console_dead[0]}",
            f"/console/deliveries/{console_dead[0]}/replay",
        ),
    )
    await twin(
        _api(
            client,
            "POST",
            "/deliveries/recover",
            {"since": since.isoformat(), "subscription": first},
        ),
        post_form(
            client,
            "/console/deliveries",
            "/console/deliveries/recover",
            since=since.isoformat(),
            subscription=second,
        ),
    )
    # The same command dies twice: replayed through /v1, given up again, then the console.
    await _api(client, "POST", f"/dead-letters/{await _dead_command(fake_redis, False)}/replay")
    via_api = await _new_entry(fake_redis, seen)
    letter = await _dead_command(fake_redis, True)
    await post_form(client, "/console/dead-letters", f"/console/dead-letters/{letter}/replay")
    pairs.append((via_api, await _new_entry(fake_redis, seen + 1)))
    seen += 2
    await twin(
        _api(client, "DELETE", sub_api),
        post_form(client, page, f"{sub_console}/delete"),
    )
    actions = [api["action"] for api, _ in pairs]
    assert actions == [
        "subscription.created",
        "subscription.changed",
        "subscription.changed",
        "subscription.changed",
        "subscription.secret_rotated",
        "subscription.tested",
        "portal_link.issued",
        "delivery.replayed",
        "deliveries.recovered",
        "dead_letter.replayed",
        "subscription.deleted",
    ]
    for via_api, via_console in pairs:
        assert via_api["actor"] == {"source": "admin"}
        assert via_console["actor"] == {"source": "console"}
        assert _shape(via_console) == {**_shape(via_api), "actor": {"source": "console"}}
        if via_api["subscriptionId"] is not None:
            assert (via_api["subscriptionId"], via_console["subscriptionId"]) in {(first, second)}


async def test_sign_in_and_sign_out_are_audited_as_console(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Signing in and out each write an entry with actor console."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    await sign_in(harness.client)
    await post_form(harness.client, "/console/overview", "/console/sign-out")
    entries = await _entries(fake_redis)
    assert [(e["action"], e["actor"]) for e in entries[:2]] == [
        ("console.signed_out", {"source": "console"}),
        ("console.signed_in", {"source": "console"}),
    ]
