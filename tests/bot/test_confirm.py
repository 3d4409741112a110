"""Confirmation of /rebalance end to end over HTTP (docs/contract.md §8).

Signed slash commands and signed ``block_actions`` clicks against the served web app,
the simulator as Glider, the fake Slack recording every response_url answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis

from bot.confirm_messages import CANCEL, CONFIRM
from relay.core.audit import AuditAction
from relay.sim.config import PF_MAIN
from relay.store import keys
from relay.store.connection import text_map
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import RESPONSE, SlackCall, signed_action
from tests.fixtures.web import WebFactory, WebHarness


def buttons(ack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The preview's buttons by action id."""
    return {
        element["action_id"]: element
        for block in ack["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }


async def click(web: WebHarness, action_id: str, value: str, **fields: Any) -> str:
    """POST a signed click; assert 200; return the response_url its answer goes to."""
    url = web.slack.response_url()
    request = signed_action(action_id, value, response_url=url, **fields)
    response = await web.client.post("/slack/events", data=request.body, headers=request.headers)
    assert response.status == 200, await response.text()
    return url


async def answer(web: WebHarness, url: str) -> SlackCall:
    path = url.removeprefix(web.slack.base_url)
    (call,) = await web.slack.wait_for(RESPONSE, where=lambda c: c.path == path)
    return call


async def audit_actions(redis: aioredis.Redis) -> list[str]:
    entries = await redis.xrange(keys.AUDIT) or []
    return [json.loads(text_map(fields or {})["entry"])["action"] for _, fields in entries]


async def confirming_web(
    web_factory: WebFactory, redis: aioredis.Redis, sim: GliderSim
) -> WebHarness:
    return await web_factory(redis, sim.client(), bot_confirm_rebalance=True)


async def test_preview_shows_glider_facts_and_the_two_buttons(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    """The ack is a preview (name, schedule, value, positions), and nothing is queued yet."""
    web = await confirming_web(web_factory, any_redis, glider_sim)
    ack = await web.command("/rebalance", PF_MAIN)
    text = json.dumps(ack["blocks"])
    assert "Alice Conservative Yield" in text
    assert "Total value" in text
    assert "Largest positions" in text
    assert "Next due" in text
    found = buttons(ack)
    assert set(found) == {CONFIRM, CANCEL}
    assert found[CONFIRM]["style"] == "danger"
    assert found[CONFIRM]["confirm"]["title"]["text"]
    assert found[CONFIRM]["value"] == found[CANCEL]["value"]
    assert PF_MAIN not in found[CONFIRM]["value"]
    assert await web.queued() == []


async def test_confirm_queues_one_command_and_replaces_the_preview(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    call = await answer(web, await click(web, CONFIRM, token))
    (command,) = await web.queued()
    assert command.portfolio_id == PF_MAIN
    assert command.requested_by.user_id == "U1"
    assert call.payload["replace_original"] is True
    assert f"`{command.request_id}`" in call.payload["text"]
    assert "Queued" in call.payload["text"]
    assert AuditAction.REBALANCE_CONFIRMED.value in await audit_actions(any_redis)


async def test_cancel_queues_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CANCEL]["value"]
    call = await answer(web, await click(web, CANCEL, token))
    assert "cancelled, nothing was queued" in call.payload["text"]
    assert call.payload["replace_original"] is True
    # A confirm after the cancel changes nothing either.
    await answer(web, await click(web, CONFIRM, token))
    assert await web.queued() == []
    assert await audit_actions(any_redis) == [AuditAction.REBALANCE_CANCELLED.value]


async def test_double_clicks_and_retries_queue_exactly_one_command(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    urls = await asyncio.gather(*(click(web, CONFIRM, token) for _ in range(6)))
    answers = [await answer(web, url) for url in urls]
    (command,) = await web.queued()
    assert all(f"`{command.request_id}`" in a.payload["text"] for a in answers)
    assert (await audit_actions(any_redis)).count(AuditAction.REBALANCE_CONFIRMED.value) == 1


async def test_only_the_requester_may_confirm(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    call = await answer(web, await click(web, CONFIRM, token, user_id="U2", user_name="bob"))
    assert "Only the person who asked" in call.payload["text"]
    assert call.payload["replace_original"] is False
    assert await web.queued() == []
    assert await audit_actions(any_redis) == []
    # The requester still can.
    await answer(web, await click(web, CONFIRM, token))
    assert len(await web.queued()) == 1


async def test_forged_unknown_and_expired_tokens_change_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    await any_redis.delete(keys.confirmation(token))  # what the 10-minute expiry does
    for value in [token, "x" * 40, "", "../../etc", "<!channel>"]:
        call = await answer(web, await click(web, CONFIRM, value))
        assert "no longer valid" in call.payload["text"]
    call = await answer(web, await click(web, "something.else", "v"))
    assert "no longer valid" in call.payload["text"]
    assert await web.queued() == []
    assert await audit_actions(any_redis) == []


async def test_a_preview_expires_after_ten_minutes(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    ttl = await any_redis.ttl(keys.confirmation(token))
    assert 590 <= ttl <= 600


async def test_an_unsigned_click_is_refused(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    request = signed_action(CONFIRM, token, secret="another-signing-secret-123")
    response = await web.client.post("/slack/events", data=request.body, headers=request.headers)
    assert response.status == 401
    assert await web.queued() == []


async def test_slow_glider_acks_at_once_and_the_preview_follows(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_factory: Any
) -> None:
    sim = await sim_factory(latency_ms=400)
    web = await web_factory(
        any_redis, sim.client(), bot_confirm_rebalance=True, status_patience=0.05
    )
    ack = await web.command("/rebalance", PF_MAIN)
    assert "Preparing the preview" in ack["text"]
    (late,) = await web.slack.wait_for(RESPONSE)
    token = buttons(late.payload)[CONFIRM]["value"]
    await answer(web, await click(web, CONFIRM, token))
    assert len(await web.queued()) == 1


async def test_confirmation_off_queues_at_once(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await web_factory(any_redis, glider_sim.client(), bot_confirm_rebalance=False)
    ack = await web.command("/rebalance", PF_MAIN)
    (command,) = await web.queued()
    assert f"`{command.request_id}`" in ack["text"]


async def test_a_rebalance_in_flight_shows_in_the_preview_and_confirming_names_it(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await confirming_web(web_factory, any_redis, glider_sim)
    first = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    await answer(web, await click(web, CONFIRM, first))
    (running,) = await web.queued()
    ack = await web.command("/rebalance", PF_MAIN)
    assert running.request_id in json.dumps(ack["blocks"])
    call = await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"]))
    assert "already in flight" in call.payload["text"]
    assert running.request_id in call.payload["text"]
    assert len(await web.queued()) == 1
