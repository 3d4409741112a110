"""On-call alerts: Slack and PagerDuty through the durable delivery queues."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from relay import metrics
from relay.core.clock import utc_now
from relay.core.events import EventError, EventType
from relay.core.redact import FRAGMENT_MIN_CHARS, register_secrets, unregister_secrets
from relay.settings import load_settings
from relay.slack.client import SlackApi
from relay.store import keys
from relay.store.connection import text
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.dispatcher import DispatcherConfig
from relay.webhooks.models import Attempt, DeliveryStatus
from relay.webhooks.oncall import (
    PAGERDUTY_TARGET,
    SLACK_TARGET,
    OnCallRules,
    disabled_alerts,
    event_alerts,
    pagerduty_verdict,
    portfolio_key,
)
from relay.webhooks.policy import AttemptResult
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from relay.webhooks.wiring import build_dispatcher, oncall_rules
from tests.fixtures.dispatch import delivery_in, dispatching, event, eventually, publish
from tests.fixtures.slack import BOT_TOKEN, FakeSlack
from tests.fixtures.webhooks import AUTH, ClientFactory, Receiver, admin_client, sequence, status

BOTH = OnCallRules(slack_channel="C0NCALL", pagerduty=True)
FAILED = EventError(code="glider_failed", message="slippage <!channel> too high")


def test_failure_opens_and_completion_closes_per_portfolio() -> None:
    """A failure alerts Slack and triggers PagerDuty; a completion closes the same incident."""
    failed = event_alerts(event(EventType.FAILED, error=FAILED), BOTH)
    assert [(a.target, a.mode) for a in failed] == [
        (SLACK_TARGET, "open"),
        (PAGERDUTY_TARGET, "open"),
    ]
    trigger = json.loads(failed[1].body)
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == portfolio_key("pf_1") == "glider-relay:portfolio:pf_1"
    assert trigger["payload"]["source"] == "glider-relay"
    assert trigger["payload"]["severity"] == "error"
    assert "routing_key" not in trigger  # added at send time, never stored in Redis
    done = event_alerts(event(EventType.COMPLETED), BOTH)
    assert [(a.target, a.mode) for a in done] == [
        (SLACK_TARGET, "close"),
        (PAGERDUTY_TARGET, "close"),
    ]
    assert json.loads(done[1].body) == {
        "event_action": "resolve",
        "dedup_key": portfolio_key("pf_1"),
    }


def test_slack_alert_escapes_glider_text() -> None:
    """Glider's message cannot ping the channel: <, > and & are escaped."""
    [slack_alert] = event_alerts(event(EventType.FAILED, error=FAILED), OnCallRules("C1"))
    assert json.loads(slack_alert.body) == {"alert": portfolio_key("pf_1")}
    text = json.loads(slack_alert.change)["h"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text


def test_stuck_operation_is_called_stuck() -> None:
    """A rebalance.failed with code 'stuck' says the operation is stuck."""
    stuck = EventError(code="stuck", message="no terminal state after 6 h")
    [alert] = event_alerts(event(EventType.FAILED, error=stuck), OnCallRules("C1"))
    assert "is stuck" in json.loads(alert.change)["h"]


def test_nothing_without_configuration_or_for_other_events() -> None:
    """No channel and no routing key: no alert; requested/submitted never alert."""
    assert event_alerts(event(EventType.FAILED), OnCallRules()) == []
    assert event_alerts(event(EventType.SUBMITTED), BOTH) == []


def test_disabled_subscription_alert_is_a_warning() -> None:
    """An auto-disabled subscription is a PagerDuty warning keyed by the subscription."""
    slack_alert, pd = disabled_alerts("sub_1", "gone", BOTH)
    change = json.loads(slack_alert.change)
    assert "410 Gone" in change["h"]
    assert change["act"] == "0"  # no buttons: nothing to retry or pause
    body = json.loads(pd.body)
    assert body["dedup_key"] == "glider-relay:subscription:sub_1"
    assert body["payload"]["severity"] == "warning"


async def test_pagerduty_trigger_then_resolve(
    any_redis: aioredis.Redis, receiver: Receiver, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """rebalance.failed triggers PagerDuty and posts to Slack; the next success resolves it."""
    pd_url = receiver.on("/v2/enqueue", status(202, '{"status":"success"}'))
    async with dispatching(any_redis, rules=BOTH, slack=slack_api, pagerduty_url=pd_url):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        await receiver.wait_for("/v2/enqueue")
        [alert] = await fake_slack.wait_for("chat.postMessage")
        await publish(any_redis, event(EventType.COMPLETED, portfolio="pf_other"))
        await publish(any_redis, event(EventType.COMPLETED))
        requests = await receiver.wait_for("/v2/enqueue", 2)
        [resolved] = await fake_slack.wait_for("chat.update")
    first, second = (json.loads(r.body) for r in requests)
    assert first["event_action"] == "trigger"
    assert first["routing_key"] == "R0UT1NGKEY0000000000000000000000"
    assert second == {
        "event_action": "resolve",
        "dedup_key": first["dedup_key"],
        "routing_key": first["routing_key"],
    }
    assert alert.payload["channel"] == "C0NCALL"
    assert "pf_1" in alert.payload["text"]
    assert alert.token == BOT_TOKEN
    # The alert itself shows it resolved (same message), with no buttons left.
    posted_ts = await any_redis.hget(keys.oncall_alert(portfolio_key("pf_1")), "ts")
    assert posted_ts is not None
    assert (resolved.payload["channel"], resolved.payload["ts"]) == ("C0NCALL", text(posted_ts))
    assert "*Resolved*" in json.dumps(resolved.payload)
    assert "rebalanced again" in json.dumps(resolved.payload)
    assert '"actions"' not in json.dumps(resolved.payload)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(receiver.to("/v2/enqueue")) == 2  # pf_other had no incident: nothing sent
    assert not await any_redis.exists(keys.oncall_open(portfolio_key("pf_1")))


async def test_slack_alert_is_retried_when_slack_is_limited(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """A 429 from Slack is a failed attempt; the queue retries it until it is posted."""
    fake_slack.fail_next(1, status=429, retry_after=0, method="chat.postMessage")
    rules = OnCallRules(slack_channel="C0NCALL")
    async with dispatching(any_redis, rules=rules, slack=slack_api):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        await fake_slack.wait_for("chat.postMessage")
        store = DeliveryStore(any_redis)

        async def posted() -> bool:
            found, _ = await store.page(subscription_id=SLACK_TARGET, limit=5)
            return bool(found) and found[0].status is DeliveryStatus.SUCCEEDED

        await eventually(posted)
    [delivery], _ = await store.page(subscription_id=SLACK_TARGET, limit=5)
    assert [a.statusCode for a in delivery.attempts] == [429, 200]
    assert delivery.attempts[0].error == "Slack error: ratelimited"


async def test_auto_disabled_subscription_alerts_on_call(
    any_redis: aioredis.Redis, receiver: Receiver, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """A subscription disabled by a 410 is reported to the on-call Slack channel."""
    url = receiver.on("/gone", status(410))
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    rules = OnCallRules(slack_channel="C0NCALL")
    async with dispatching(any_redis, rules=rules, slack=slack_api):
        await publish(any_redis, event(EventType.COMPLETED))
        [call] = await fake_slack.wait_for("chat.postMessage")
    assert sub.id in call.payload["text"]
    assert "disabled" in call.payload["text"]


def test_rules_follow_the_settings() -> None:
    """Slack alerts need channel and bot token; PagerDuty needs its routing key."""
    base = {"redis_url": "redis://127.0.0.1:6379/0"}
    assert oncall_rules(load_settings(**base)) == OnCallRules()
    channel_only = load_settings(**base, oncall_slack_channel="C1")
    assert oncall_rules(channel_only) == OnCallRules()
    both = load_settings(
        **base, oncall_slack_channel="C1", slack_bot_token=BOT_TOKEN, pagerduty_routing_key="k" * 32
    )
    assert oncall_rules(both) == OnCallRules(slack_channel="C1", pagerduty=True)


async def test_dispatcher_built_from_settings_alerts_slack(
    any_redis: aioredis.Redis, receiver: Receiver, fake_slack: FakeSlack
) -> None:
    """The worker's dispatcher, configured only by settings, delivers and alerts on-call."""
    settings = load_settings(
        redis_url="redis://127.0.0.1:6379/0",
        relay_allow_private_urls=True,
        oncall_slack_channel="C0NCALL",
        slack_bot_token=BOT_TOKEN,
        slack_api_url=fake_slack.api_url,
    )
    await SubscriptionStore(any_redis).create(
        SubscriptionCreate(url=receiver.url("/hook"), events=["rebalance.failed"])
    )
    dispatcher = build_dispatcher(
        any_redis, settings, config=DispatcherConfig(block_ms=50, poll_s=0.05), consumer="w1"
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        await receiver.wait_for("/hook")
        [call] = await fake_slack.wait_for("chat.postMessage")
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, timeout=15)
        await dispatcher.close()
    assert call.payload["channel"] == "C0NCALL"


PD_INVALID = json.dumps(
    {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["'summary' is missing"],
    }
)


async def test_pagerduty_invalid_event_is_dead_at_once_with_the_reason(
    any_redis: aioredis.Redis, receiver: Receiver, aiohttp_client: ClientFactory
) -> None:
    """PagerDuty's 400 is final: one attempt, dead, the reason in the deliveries list, counted."""
    rejected = metrics.DELIVERIES_REJECTED._value.get()
    pd_url = receiver.on("/v2/enqueue", status(400, PD_INVALID))
    rules = OnCallRules(pagerduty=True)
    async with dispatching(any_redis, rules=rules, pagerduty_url=pd_url):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
    assert len(receiver.to("/v2/enqueue")) == 1
    assert dead.subscriptionId == PAGERDUTY_TARGET
    [attempt] = dead.attempts
    assert attempt.statusCode == 400
    assert attempt.error is not None
    assert "invalid" in attempt.error
    assert "'summary' is missing" in attempt.error
    assert metrics.DELIVERIES_REJECTED._value.get() == rejected + 1
    admin = await admin_client(aiohttp_client, any_redis)
    listed = await admin.get("/deliveries?status=dead", headers=AUTH)
    [shown] = (await listed.json())["data"]
    assert shown["attempts"][0]["error"] == attempt.error


async def test_pagerduty_throttling_and_outages_are_retried(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """429 and 5xx from PagerDuty stay ordinary failures: retried until it accepts."""
    pd_url = receiver.on(
        "/v2/enqueue",
        sequence(status(429), status(502), status(202, '{"status":"success"}')),
    )
    async with dispatching(any_redis, rules=OnCallRules(pagerduty=True), pagerduty_url=pd_url):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    assert [a.statusCode for a in done.attempts] == [429, 502, 202]


def test_pagerduty_reason_never_keeps_an_echoed_routing_key() -> None:
    """PagerDuty echoing the routing key in its 400 (text or JSON, cut short or not): the
    reason kept on the attempt has none of it."""
    key = "R0UT1NGK3Y0123456789abcdefABCDEF"
    register_secrets([key])
    try:
        for body in (
            json.dumps({"message": "Event object is invalid", "errors": [f"bad key {key}"]}),
            "x" * 190 + key,  # not JSON, and the key across the 200-character cut
        ):
            attempt = Attempt(at=utc_now(), statusCode=400, responseBody=body, latencyMs=1)
            verdict = pagerduty_verdict(AttemptResult(attempt))
            assert verdict.final
            error = verdict.attempt.error or ""
            assert key[:FRAGMENT_MIN_CHARS] not in error, error
    finally:
        unregister_secrets([key])
