"""Four-eyes approvals end to end over HTTP (docs/contract.md §8).

A policy rule with ``require_approval``: the requester confirms, the request is posted
to APPROVALS_SLACK_CHANNEL, a holder of the approve role who is not the requester
decides (first decision wins), the message is updated in place, and the events go out
on the events stream like every other event. Expiry runs in the worker's upkeep.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis.asyncio as aioredis

from bot.confirm_messages import CONFIRM
from relay.core.audit import AuditAction
from relay.settings import Settings
from relay.sim.config import PF_MAIN
from relay.slack.approvals import APPROVE, REJECT
from relay.store import keys
from relay.store.confirmations import load_approval
from relay.store.connection import text_map
from relay.worker.registry import Tuning, WorkerContext, upkeep
from tests.bot.test_confirm import answer, audit_actions, buttons, click
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import RESPONSE, SlackCall
from tests.fixtures.web import WebFactory, WebHarness

CHANNEL = "CAPPROVALS"
POLICY = f"""
[roles]
operators = ["UOP1", "UOP4"]
approvers = ["UAP2", "UAP3"]

[[rules]]
portfolios = ["{PF_MAIN}"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
approve = ["approvers"]
require_approval = true

[[rules]]
portfolios = ["*"]
rebalance = ["operators"]
"""
DECISIONS = {"approval.approved", "approval.rejected", "approval.expired"}
REQUESTER = {"user_id": "UOP1", "user_name": "olive"}
APPROVER = {"user_id": "UAP2", "user_name": "ada"}


async def approvals_web(
    web_factory: WebFactory,
    redis: aioredis.Redis,
    sim: GliderSim,
    tmp_path: Any,
    *,
    confirm: bool = True,
) -> WebHarness:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return await web_factory(
        redis,
        sim.client(),
        bot_confirm_rebalance=confirm,
        relay_policy_file=str(policy),
        approvals_slack_channel=CHANNEL,
    )


async def confirmed(web: WebHarness) -> tuple[str, SlackCall]:
    """/rebalance, Confirm: the approval token and the posted request."""
    ack = await web.command("/rebalance", PF_MAIN, **REQUESTER)
    assert "`approvers`" in json.dumps(ack["blocks"])
    reply = await answer(
        web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"], **REQUESTER)
    )
    assert "waiting for approval" in reply.payload["text"]
    (posted,) = await web.slack.wait_for("chat.postMessage")
    return buttons(posted.payload)[APPROVE]["value"], posted


async def events(redis: aioredis.Redis) -> list[dict[str, Any]]:
    entries = await redis.xrange(keys.EVENTS) or []
    return [json.loads(text_map(fields or {})["body"]) for _, fields in entries]


async def test_a_rule_that_needs_approval_cannot_be_bypassed_by_turning_confirmation_off(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """BOT_CONFIRM_REBALANCE=false queues other commands at once, but a rebalance under a
    require_approval rule still gets its preview, and then waits for a second person."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path, confirm=False)
    _, posted = await confirmed(web)
    assert set(buttons(posted.payload)) == {APPROVE, REJECT}
    assert await web.queued() == []


async def test_approval_by_a_second_user_queues_the_command_attributed_to_both(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    token, posted = await confirmed(web)
    assert posted.payload["channel"] == CHANNEL
    assert "<@UOP1>" in posted.payload["text"]
    assert PF_MAIN in json.dumps(posted.payload["blocks"])
    assert set(buttons(posted.payload)) == {APPROVE, REJECT}
    assert await web.queued() == []
    await click(web, APPROVE, token, **APPROVER)
    (command,) = await web.queued()
    # The requester hears "queued" through the command's own response_url.
    assert command.response_url is not None
    own_url = command.response_url.removeprefix(web.slack.base_url)
    (told,) = await web.slack.wait_for(RESPONSE, where=lambda c: c.path == own_url)
    assert "Queued" in told.payload["text"]
    assert command.request_id in told.payload["text"]
    assert command.requested_by.user_id == "UOP1"
    assert command.approved_by is not None
    assert command.approved_by.user_id == "UAP2"
    (update,) = await web.slack.wait_for("chat.update")
    assert update.payload["ts"] == posted.payload.get("ts") or update.payload["ts"]
    assert update.payload["channel"] == CHANNEL
    assert "Approved by <@UAP2>" in update.payload["text"]
    assert command.request_id in update.payload["text"]
    kinds = {e["type"]: e for e in await events(any_redis)}
    assert kinds["rebalance.approval_requested"]["data"]["requestedBy"]["userId"] == "UOP1"
    assert kinds["rebalance.approved"]["data"]["approvedBy"]["userId"] == "UAP2"
    assert kinds["rebalance.requested"]["data"]["requestId"] == command.request_id
    actions = await audit_actions(any_redis)
    assert actions == [
        AuditAction.REBALANCE_CONFIRMED.value,
        AuditAction.APPROVAL_REQUESTED.value,
        AuditAction.APPROVAL_APPROVED.value,
        AuditAction.COMMAND_RECEIVED.value,  # the approved command, queued with its entry
    ]


async def test_later_clicks_are_told_who_decided_and_change_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    token, _ = await confirmed(web)
    urls = await asyncio.gather(
        click(web, APPROVE, token, **APPROVER),
        click(web, REJECT, token, user_id="UAP3", user_name="bea"),
        click(web, APPROVE, token, user_id="UAP3", user_name="bea"),
    )
    texts = [(await answer(web, url)).payload["text"] for url in urls]
    decided = [t for t in texts if "already" in t]
    assert len(decided) >= 2
    approval = await load_approval(any_redis, token)
    assert approval is not None
    assert approval.decided_by is not None
    assert all(f"<@{approval.decided_by.user_id}>" in t for t in decided)
    assert len(await web.slack.wait_for("chat.update")) == 1
    queued = await web.queued()
    assert len(queued) == (1 if approval.state == "approved" else 0)
    decisions = [
        a
        for a in await audit_actions(any_redis)
        if a.startswith("approval.") and a != "approval.requested"
    ]
    assert len(decisions) == 1


async def test_self_approval_is_refused_and_changes_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    token, _ = await confirmed(web)
    before = await events(any_redis)
    reply = await answer(web, await click(web, APPROVE, token, **REQUESTER))
    assert "someone else must decide" in reply.payload["text"]
    assert reply.payload["replace_original"] is False
    reply = await answer(web, await click(web, APPROVE, token, user_id="UOP4"))
    assert "`approvers`" in reply.payload["text"] or "approvers" in reply.payload["text"]
    approval = await load_approval(any_redis, token)
    assert approval is not None
    assert approval.state == "pending"
    assert await web.queued() == []
    assert await events(any_redis) == before
    assert web.slack.calls_to("chat.update") == []


async def test_rejection_queues_nothing_and_declines_with_rejected(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    token, _ = await confirmed(web)
    await click(web, REJECT, token, **APPROVER)
    assert await web.queued() == []
    (update,) = await web.slack.wait_for("chat.update")
    assert "Rejected by <@UAP2>" in update.payload["text"]
    (declined,) = [e for e in await events(any_redis) if e["type"] == "rebalance.declined"]
    assert declined["data"]["error"]["code"] == "rejected"
    assert declined["data"]["declinedBy"]["userId"] == "UAP2"


async def _past_deadline(redis: aioredis.Redis, token: str) -> None:
    """What the passing of APPROVAL_TTL does to the stored request (no clock to wait on)."""
    past = int(time.time() * 1000) - 1000
    await redis.hset(keys.approval(token), "expires_at_ms", str(past))
    await redis.zadd(keys.APPROVALS_DUE, {token: past})


async def test_a_click_after_the_deadline_expires_the_request(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    token, _ = await confirmed(web)
    await _past_deadline(any_redis, token)
    await answer(web, await click(web, APPROVE, token, **APPROVER))
    assert await web.queued() == []
    (update,) = await web.slack.wait_for("chat.update")
    assert "Expired" in update.payload["text"]
    (declined,) = [e for e in await events(any_redis) if e["type"] == "rebalance.declined"]
    assert declined["data"]["error"]["code"] == "expired"
    assert "declinedBy" not in declined["data"]


async def test_the_worker_upkeep_expires_requests_past_their_deadline_at_start(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """No process was up at the deadline: the next worker to start expires the request."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    token, _ = await confirmed(web)
    await _past_deadline(any_redis, token)
    settings: Settings = web.settings
    ctx = WorkerContext(any_redis, settings, consumer="test-upkeep", tuning=Tuning())
    component = await upkeep(ctx)
    running = asyncio.create_task(component.run())
    try:
        (update,) = await web.slack.wait_for("chat.update", within=10)
    finally:
        component.stop()
        await asyncio.wait_for(running, 10)
        await ctx.close()
    assert "Expired" in update.payload["text"]
    approval = await load_approval(any_redis, token)
    assert approval is not None
    assert approval.state == "expired"
    assert await any_redis.zcard(keys.APPROVALS_DUE) == 0
    assert AuditAction.APPROVAL_EXPIRED.value in await audit_actions(any_redis)
    reply = await answer(web, await click(web, APPROVE, token, **APPROVER))
    assert "already expired" in reply.payload["text"]
    assert await web.queued() == []


async def test_without_an_approvals_channel_the_request_goes_to_the_commands_channel(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    web = await web_factory(
        any_redis, glider_sim.client(), bot_confirm_rebalance=True, relay_policy_file=str(policy)
    )
    ack = await web.command("/rebalance", PF_MAIN, channel_id="CTEAM", **REQUESTER)
    await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"], **REQUESTER))
    (posted,) = await web.slack.wait_for("chat.postMessage")
    assert posted.payload["channel"] == "CTEAM"


async def test_the_requester_hears_of_a_rejection(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    own_url = web.slack.response_url()
    ack = await web.command("/rebalance", PF_MAIN, response_url=own_url, **REQUESTER)
    await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"], **REQUESTER))
    (posted,) = await web.slack.wait_for("chat.postMessage")
    await click(web, REJECT, buttons(posted.payload)[APPROVE]["value"], **APPROVER)
    path = own_url.removeprefix(web.slack.base_url)
    (told,) = await web.slack.wait_for(RESPONSE, where=lambda c: c.path == path)
    assert "Rejected by <@UAP2>" in told.payload["text"]
    assert await web.queued() == []
