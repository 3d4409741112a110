"""The on-call alert's buttons over HTTP: signed clicks on the served bot, the dispatcher
posting to the Slack fake and PagerDuty (a local receiver), the simulator as Glider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from relay.core.audit import AuditAction
from relay.core.events import EventError, EventType
from relay.core.records import RequestState
from relay.sim.config import PF_MAIN
from relay.slack.client import SlackApi
from relay.store import keys
from relay.store.connection import text, text_map
from relay.webhooks.alert_view import EXAMPLES
from relay.webhooks.oncall import (
    PAGERDUTY_TARGET,
    SLACK_TARGET,
    OnCallRules,
    portfolio_key,
    subscription_key,
)
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionPatch, SubscriptionStore
from tests.fixtures.dispatch import dispatching, event, eventually, publish
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import RESPONSE, FakeSlack, SlackCall, signed_action
from tests.fixtures.web import WebFactory, WebHarness
from tests.fixtures.webhooks import Receiver, status

BOTH = OnCallRules(slack_channel="C0NCALL", pagerduty=True)
FAILED = EventError(code="glider_failed", message="slippage <!channel> too high")
MARKER = portfolio_key(PF_MAIN)
POLICY = """
[roles]
operators = ["UOP1"]

[[rules]]
portfolios = ["pf_*"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
"""


async def click(
    web: WebHarness, action_id: str, value: str, alert: SlackCall | None = None, **fields: Any
) -> SlackCall:
    """POST a signed click on ``alert``; return the answer sent to its response_url."""
    url = web.slack.response_url()
    message = {k: alert.payload[k] for k in ("text", "blocks")} if alert else None
    request = signed_action(
        action_id, value, response_url=url, channel_id="C0NCALL", message=message, **fields
    )
    response = await web.client.post("/slack/events", data=request.body, headers=request.headers)
    assert response.status == 200, await response.text()
    path = url.removeprefix(web.slack.base_url)
    (call,) = await web.slack.wait_for(RESPONSE, where=lambda c: c.path == path)
    return call


def actions(payload: dict[str, Any]) -> list[str]:
    blocks = payload["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def pagerduty(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.to("/v2/enqueue")]


async def audit_actions(redis: aioredis.Redis) -> list[str]:
    entries = await redis.xrange(keys.AUDIT) or []
    return [json.loads(text_map(fields or {})["entry"])["action"] for _, fields in entries]


def shown(call: SlackCall) -> str:
    return json.dumps(call.payload)


async def posted_ts(redis: aioredis.Redis, marker: str = MARKER) -> str:
    """The ts of the alert message the worker posted, as it keeps it."""
    held = await redis.hget(keys.oncall_alert(marker), "ts")
    assert held is not None
    return text(held)


async def test_ack_sends_acknowledge_once_and_updates_the_alert_in_place(
    web_factory: WebFactory,
    any_redis: aioredis.Redis,
    receiver: Receiver,
    glider_sim: GliderSim,
    slack_api: SlackApi,
) -> None:
    """Ack: PagerDuty acknowledge with the dedup_key, the alert shows who; twice: nothing;
    the next success shows the same message resolved, with no buttons left."""
    pd_url = receiver.on("/v2/enqueue", status(202, '{"status":"success"}'))
    web = await web_factory(any_redis, glider_sim.client())
    async with dispatching(any_redis, rules=BOTH, slack=slack_api, pagerduty_url=pd_url):
        await publish(any_redis, event(EventType.FAILED, portfolio=PF_MAIN, error=FAILED))
        [alert] = await web.slack.wait_for("chat.postMessage")
        assert actions(alert.payload) == ["oncall.ack", "oncall.retry", "oncall.pause"]
        answer = await click(web, "oncall.ack", MARKER, alert, message_ts="1700.000100")
        assert "Acknowledged" in answer.payload["text"]
        assert answer.payload["response_type"] == "ephemeral"
        await receiver.wait_for("/v2/enqueue", 2)
        [acked] = await web.slack.wait_for("chat.update")
        again = await click(web, "oncall.ack", MARKER, alert, user_id="U2")
        assert "Already acknowledged by <@U1>" in again.payload["text"]
        await publish(any_redis, event(EventType.COMPLETED, portfolio=PF_MAIN))
        await receiver.wait_for("/v2/enqueue", 3)
        _, resolved = await web.slack.wait_for("chat.update", 2)
        late = await click(web, "oncall.ack", MARKER, alert)
    trigger, ack, resolve = pagerduty(receiver)
    assert trigger["event_action"] == "trigger"
    assert ack["event_action"] == "acknowledge"
    assert ack["dedup_key"] == trigger["dedup_key"] == MARKER
    assert resolve["event_action"] == "resolve"
    ts = await posted_ts(any_redis)
    for update in (acked, resolved):  # the message the worker posted, whatever was clicked
        assert (update.payload["channel"], update.payload["ts"]) == ("C0NCALL", ts)
    assert "*Acknowledged* by <@U1>" in shown(acked)
    assert actions(acked.payload) == ["oncall.retry", "oncall.pause"]
    assert "*Resolved*" in shown(resolved)
    assert actions(resolved.payload) == []
    assert "already resolved" in late.payload["text"]
    assert len(web.slack.calls_to("chat.update")) == 2
    assert len(web.slack.calls_to("chat.postMessage")) == 1
    acks = await audit_actions(any_redis)
    assert acks.count(AuditAction.ONCALL_ACKNOWLEDGED.value) == 1


async def test_retry_from_the_alert_is_a_new_rebalance_as_the_clicker(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, slack_api: SlackApi
) -> None:
    """oncall.retry starts a rebalance requested by the clicking user; the alert says so,
    through the worker's queue, and the retry is audited as coming from the alert."""
    web = await web_factory(any_redis, glider_sim.client())
    async with dispatching(any_redis, rules=BOTH, slack=slack_api):
        await publish(any_redis, event(EventType.FAILED, portfolio=PF_MAIN, error=FAILED))
        [alert] = await web.slack.wait_for("chat.postMessage")
        answer = await click(web, "oncall.retry", MARKER, alert)
        [update] = await web.slack.wait_for("chat.update")
    (command,) = await web.queued()
    assert command.portfolio_id == PF_MAIN
    assert command.requested_by.user_id == "U1"
    assert command.action.value == "rebalance"
    assert f"`{command.request_id}`" in answer.payload["text"]
    assert update.payload["ts"] == await posted_ts(any_redis)
    assert "Retry requested by <@U1>" in shown(update)
    assert actions(update.payload) == ["oncall.ack", "oncall.retry", "oncall.pause"]
    assert AuditAction.ONCALL_RETRIED.value in await audit_actions(any_redis)


async def test_pause_from_the_alert_goes_through_the_policy(
    web_factory: WebFactory, any_redis: aioredis.Redis, tmp_path: Path, slack_api: SlackApi
) -> None:
    """Without the role: a refusal naming it (pause, retry and acknowledge), audited, nothing
    queued, acknowledged or shown; an operator pauses. The alert was posted by an earlier
    version (no alert kept in Redis): the clicked message is updated in place from then on."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    web = await web_factory(any_redis, relay_policy_file=str(policy))
    await any_redis.set(keys.oncall_open(MARKER), "1")
    alert = SlackCall("chat.postMessage", _alert_payload(), 200)
    async with dispatching(any_redis, rules=BOTH, slack=slack_api):
        await eventually(lambda: any_redis.exists(keys.subscription(SLACK_TARGET)))
        refused = await click(web, "oncall.pause", MARKER, alert, user_id="U9XX")
        assert "`operators`" in refused.payload["text"]
        retry = await click(web, "oncall.retry", MARKER, alert, user_id="U9XX")
        assert "`operators`" in retry.payload["text"]
        ack = await click(web, "oncall.ack", MARKER, alert, user_id="U9XX")
        assert "`operators`" in ack.payload["text"]
        assert await web.queued() == []
        assert await any_redis.get(keys.oncall_open(MARKER)) == b"1"  # nobody acked
        assert not await any_redis.exists(keys.oncall_alert(MARKER))  # nothing shown
        await click(web, "oncall.pause", MARKER, alert, user_id="UOP1", message_ts="9.1")
        [update] = await web.slack.wait_for("chat.update")
    (command,) = await web.queued()
    assert command.action.value == "pause"
    assert command.requested_by.user_id == "UOP1"
    assert (update.payload["channel"], update.payload["ts"]) == ("C0NCALL", "9.1")
    assert "Paused by <@UOP1>" in shown(update)
    assert web.slack.calls_to("chat.postMessage") == []
    audited = await audit_actions(any_redis)
    assert audited.count(AuditAction.COMMAND_REFUSED.value) == 3
    assert audited.count(AuditAction.ONCALL_PAUSED.value) == 1


async def test_actions_on_a_resolved_or_forged_alert_change_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """No open incident: a clear answer; a value that is no marker: a stale button."""
    web = await web_factory(any_redis)
    for action_id in ("oncall.retry", "oncall.pause", "oncall.ack"):
        answer = await click(web, action_id, MARKER)
        assert "already resolved" in answer.payload["text"]
    forged = await click(web, "oncall.retry", "glider-relay:subscription:sub_1")
    assert "no longer valid" in forged.payload["text"]
    assert await web.queued() == []
    assert web.slack.calls_to("chat.update") == []


async def test_unsigned_on_call_clicks_are_rejected(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A click signed with another secret is refused before any handler runs."""
    web = await web_factory(any_redis)
    await any_redis.set(keys.oncall_open(MARKER), "1")
    for action_id in ("oncall.ack", "oncall.retry", "oncall.pause", "job.retry"):
        request = signed_action(action_id, MARKER, secret="not-the-signing-secret")
        response = await web.client.post(
            "/slack/events", data=request.body, headers=request.headers
        )
        assert response.status == 401
    held = await any_redis.get(keys.oncall_open(MARKER))
    assert held is not None
    assert text(held) == "1"  # not acknowledged
    assert await web.queued() == []


async def test_job_retry_from_a_failed_card(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    """job.retry with a failed request's id queues a new rebalance of its portfolio."""
    web = await web_factory(any_redis, glider_sim.client())
    await web.command("/rebalance", PF_MAIN)
    (first,) = await web.queued()
    await any_redis.hset(keys.request(first.request_id), "state", RequestState.FAILED.value)
    await any_redis.delete(keys.portfolio_inflight(PF_MAIN))
    await click(web, "job.retry", first.request_id)

    async def two() -> bool:
        return len(await web.queued()) == 2

    await eventually(two)
    second = (await web.queued())[1]
    assert second.request_id != first.request_id
    assert second.portfolio_id == PF_MAIN
    assert second.requested_by.user_id == "U1"
    unknown = await click(web, "job.retry", "req_NOSUCHREQUEST")
    assert "no longer valid" in unknown.payload["text"]


def _alert_payload() -> dict[str, Any]:
    body = EXAMPLES["alert-open"]()
    return {"text": body["text"], "blocks": body["blocks"]}


async def test_re_enabling_a_disabled_subscription_resolves_its_alert(
    any_redis: aioredis.Redis, receiver: Receiver, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """The disable alert's PagerDuty incident is resolved by the re-enable, and only once;
    its Slack alert (no buttons) is shown resolved in place."""
    pd_url = receiver.on("/v2/enqueue", status(202, '{"status":"success"}'))
    gone = receiver.on("/gone", status(410))
    store = SubscriptionStore(any_redis)
    sub = await store.create(SubscriptionCreate(url=gone, events=["*"]))
    async with dispatching(any_redis, rules=BOTH, slack=slack_api, pagerduty_url=pd_url):
        await publish(any_redis, event(EventType.COMPLETED))
        await receiver.wait_for("/v2/enqueue")
        [alert] = await fake_slack.wait_for("chat.postMessage")
        await store.update(sub.id, SubscriptionPatch(enabled=True))
        await store.update(sub.id, SubscriptionPatch(enabled=False))
        await store.update(sub.id, SubscriptionPatch(enabled=True))
        await receiver.wait_for("/v2/enqueue", 2)
        [resolved] = await fake_slack.wait_for("chat.update")
    trigger, resolve = pagerduty(receiver)
    assert trigger["event_action"] == "trigger"
    assert resolve == {
        "event_action": "resolve",
        "dedup_key": subscription_key(sub.id),
        "routing_key": trigger["routing_key"],
    }
    assert not await any_redis.exists(keys.oncall_open(subscription_key(sub.id)))
    # The second re-enable found nothing open: two PagerDuty deliveries in all, ever.
    assert await any_redis.zcard(keys.subscription_deliveries(PAGERDUTY_TARGET)) == 2
    assert actions(alert.payload) == []
    assert resolved.payload["ts"] == await posted_ts(any_redis, subscription_key(sub.id))
    assert "*Resolved*" in shown(resolved)
    assert "re-enabled" in shown(resolved)
    assert len(fake_slack.calls_to("chat.update")) == 1
