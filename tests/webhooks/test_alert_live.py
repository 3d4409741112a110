"""The on-call alert kept current under Slack's faults: the dispatcher renders each alert
through the Slack fake, one message per incident, never an older state after a newer one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.core.clock import utc_now
from relay.core.commands import Requester
from relay.core.events import EventError, EventType
from relay.slack.client import SlackApi
from relay.store import keys
from relay.store.connection import text
from relay.webhooks import incidents
from relay.webhooks.alert_sender import UP_TO_DATE, AlertBusy, AlertSender
from relay.webhooks.oncall import OnCallRules, portfolio_key
from relay.webhooks.schedule import RetrySchedule
from tests.fixtures.dispatch import dispatching, event, eventually, publish
from tests.fixtures.slack import FakeSlack, SlackCall

RULES = OnCallRules(slack_channel="C0NCALL")
FAILED = EventError(code="glider_failed", message="slippage too high")
MARKER = portfolio_key("pf_1")
# Enough quick retries to outlast the faults below (the real schedule has days of them).
PATIENT = RetrySchedule(delays_s=(0,) + (0.02,) * 12, jitter=0)
WHO = Requester(team_id="T1", user_id="U1", user_name="alice")


def shown(call: SlackCall) -> str:
    return json.dumps(call.payload)


async def stored_ts(redis: aioredis.Redis) -> str:
    held = await redis.hget(keys.oncall_alert(MARKER), "ts")
    assert held is not None
    return text(held)


async def rendered_all(redis: aioredis.Redis) -> bool:
    held = await redis.hmget(keys.oncall_alert(MARKER), ["v", "r"])
    return held[0] is not None and held[0] == held[1]


async def test_changes_under_a_429_storm_end_in_the_latest_state_in_order(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """Ack, retry, pause and resolve while Slack answers 429: delayed, never lost; the
    updates Slack takes only ever grow (steps shown), and the last one is the resolve."""
    async with dispatching(any_redis, rules=RULES, slack=slack_api, schedule=PATIENT):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        [posted] = await fake_slack.wait_for("chat.postMessage")
        fake_slack.fail_next(6, status=429, retry_after=0, method="chat.update")
        at = utc_now()
        await incidents.acknowledge(any_redis, MARKER, WHO, at, portfolio_id="pf_1")
        await incidents.note_step(
            any_redis, MARKER, "retried", WHO, at, portfolio_id="pf_1", detail="queued"
        )
        await incidents.note_step(
            any_redis, MARKER, "paused", WHO, at, portfolio_id="pf_1", detail="queued"
        )
        await publish(any_redis, event(EventType.COMPLETED))
        await eventually(lambda: rendered_all(any_redis))
        await eventually(lambda: "*Resolved*" in shown(fake_slack.calls_to("chat.update")[-1]))
    updates = fake_slack.calls_to("chat.update")
    limited = fake_slack.calls_to("chat.update", include_failed=True)
    assert len(limited) - len(updates) == 6  # every 429 was answered, then retried
    assert {u.payload["ts"] for u in updates} == {await stored_ts(any_redis)}
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    steps = [shown(u).count(" by <@U1> at ") for u in updates]
    assert steps == sorted(steps)  # an older state never followed a newer one
    resolved = ["*Resolved*" in shown(u) for u in updates]
    assert resolved[-1]
    assert resolved == sorted(resolved)
    last = shown(updates[-1])
    assert "Retry requested by <@U1>" in last
    assert "Paused by <@U1>" in last
    assert posted.payload["channel"] == "C0NCALL"


async def test_a_deleted_alert_is_posted_again_and_kept_from_then_on(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """chat.update answering message_not_found: the alert is posted anew, and that message
    is the one updated next."""
    async with dispatching(any_redis, rules=RULES, slack=slack_api, schedule=PATIENT):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        [first] = await fake_slack.wait_for("chat.postMessage")
        old_ts = await stored_ts(any_redis)
        fake_slack.refusals["chat.update", old_ts] = "message_not_found"
        at = utc_now()
        await incidents.acknowledge(any_redis, MARKER, WHO, at, portfolio_id="pf_1")
        _, again = await fake_slack.wait_for("chat.postMessage", 2)
        await eventually(lambda: rendered_all(any_redis))
        new_ts = await stored_ts(any_redis)
        await publish(any_redis, event(EventType.COMPLETED))
        [resolved] = await fake_slack.wait_for("chat.update")
    assert new_ts != old_ts
    assert "*Acknowledged* by <@U1>" in shown(again)
    assert resolved.payload["ts"] == new_ts
    assert "*Resolved*" in shown(resolved)
    assert "pf_1" in shown(first)


async def test_a_failure_while_open_updates_the_alert_and_one_after_the_resolve_posts_anew(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """One message per incident: a second failure updates it (counted, acknowledge offered
    again); after the resolve, the next failure is a new incident with a new message."""
    async with dispatching(any_redis, rules=RULES, slack=slack_api):
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        await fake_slack.wait_for("chat.postMessage")
        await incidents.acknowledge(any_redis, MARKER, WHO, utc_now(), portfolio_id="pf_1")
        [acked] = await fake_slack.wait_for("chat.update")
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        _, again = await fake_slack.wait_for("chat.update", 2)
        await publish(any_redis, event(EventType.COMPLETED))
        await fake_slack.wait_for("chat.update", 3)
        await publish(any_redis, event(EventType.FAILED, error=FAILED))
        _, fresh = await fake_slack.wait_for("chat.postMessage", 2)
    assert "*Acknowledged*" in shown(acked)
    assert "failed 2 times since this alert opened" in shown(again)
    assert "*Open*" in shown(again)  # the new failure set the incident back to unacknowledged
    assert '"oncall.ack"' in shown(again)
    assert "*Open*" in shown(fresh)
    assert "failed 2 times" not in shown(fresh)


async def test_two_renderers_of_one_alert_post_it_once(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """Attempts rendering the same alert at once: one holds the render lock, the others wait
    for it and find the alert shown (none fails); it is posted once, then updated. A lock
    whose holder died is waited for only so long: that attempt is told to retry."""
    await any_redis.hset(
        keys.oncall_alert(MARKER),
        mapping={"h": "failed", "d": "detail", "act": "1", "to": "C0NCALL", "n": 1, "v": 1},
    )
    web = slack_api.web
    assert web is not None
    sender = AlertSender(any_redis)
    outcomes = await asyncio.gather(
        *(sender.show(web, MARKER) for _ in range(4)), return_exceptions=True
    )
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    dead_holder = keys.oncall_alert_lock(MARKER)
    await any_redis.set(dead_holder, "a-dead-worker", px=60_000)
    with pytest.raises(AlertBusy):
        await AlertSender(any_redis, busy_wait_s=0.05).show(web, MARKER)
    await any_redis.delete(dead_holder)
    await any_redis.hset(
        keys.oncall_alert(MARKER), mapping={"ab": "U1", "aa": utc_now().isoformat()}
    )
    await any_redis.hincrby(keys.oncall_alert(MARKER), "v", 1)
    await sender.show(web, MARKER)
    [update] = fake_slack.calls_to("chat.update")
    assert update.payload["ts"] == await stored_ts(any_redis)
    assert "*Acknowledged* by <@U1>" in shown(update)
    assert await sender.show(web, MARKER) == UP_TO_DATE  # nothing newer: Slack not called
    assert len(fake_slack.calls_to("chat.update")) == 1


class ChangeAfterRead:
    """A client on which the alert changes right after its first read answers, before
    the reader settles (another worker's click recorded in between)."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def hgetall(self, key: str) -> Any:
        answer = await self.inner.hgetall(key)
        if not self.fired and key == keys.oncall_alert(MARKER):
            self.fired = True
            await self.inner.hset(key, mapping={"ab": "U1", "aa": utc_now().isoformat()})
            await self.inner.hincrby(key, "v", 1)
        return answer


async def test_a_change_recorded_between_an_up_to_date_read_and_its_settle_is_rendered(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack_api: SlackApi
) -> None:
    """The read finds the alert shown; an acknowledgement lands before the settle, which
    keeps the lock (that change's own attempt finds it busy): this attempt renders it."""
    await any_redis.hset(
        keys.oncall_alert(MARKER),
        mapping={"h": "failed", "d": "detail", "act": "1", "to": "C0NCALL", "n": 1, "v": 1},
    )
    web = slack_api.web
    assert web is not None
    await AlertSender(any_redis).show(web, MARKER)
    await AlertSender(ChangeAfterRead(any_redis)).show(web, MARKER)  # type: ignore[arg-type]
    [update] = fake_slack.calls_to("chat.update")
    assert "*Acknowledged* by <@U1>" in shown(update)
    assert await rendered_all(any_redis)
    assert not await any_redis.exists(keys.oncall_alert_lock(MARKER))
