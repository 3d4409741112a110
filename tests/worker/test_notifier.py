"""Requester replies: response_url while valid (30 min, 5 uses), else a DM; Slack retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.core import transitions
from relay.core.commands import Action
from relay.core.plans import Plan
from relay.core.records import REPLY_USES
from relay.glider import Operation
from relay.settings import load_settings
from relay.slack.client import SlackApi, create_slack_api
from relay.slack.response_urls import DisallowedResponseUrl
from relay.store import dead_letters, keys, outcomes
from relay.store.connection import text, text_map
from relay.store.pending import PendingEntry
from relay.store.queue import ensure_group
from relay.worker.notifier import Notifier
from tests.fixtures.slack import BOT_TOKEN, LOOPBACK_HOST, RESPONSE, FakeSlack
from tests.fixtures.webhooks import Receiver
from tests.fixtures.worker import pending_rows, queue_command, request_record, take_command

Waits = list[float]


@pytest.fixture
def waits() -> Waits:
    return []


@pytest.fixture
async def slack(fake_slack: FakeSlack, waits: Waits) -> AsyncIterator[SlackApi]:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = load_settings(
        slack_api_url=fake_slack.api_url,
        slack_bot_token=BOT_TOKEN,
        slack_response_url_hosts=LOOPBACK_HOST,
    )
    api = create_slack_api(settings, sleep=sleep)
    yield api
    await api.close()


def notifier(redis: aioredis.Redis, slack: SlackApi, minutes_later: float = 1) -> Notifier:
    """A notifier whose clock reads ``minutes_later`` after now."""

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=minutes_later)

    return Notifier(redis, slack, consumer="n1", clock=clock)


async def outcome(
    redis: aioredis.Redis,
    response_url: str | None,
    make_plan: Callable[[Any], Plan],
    action: Action = Action.REBALANCE,
) -> PendingEntry:
    """Queue a command, record an outcome for it, and take its reply entry."""
    command = await queue_command(redis, action, response_url=response_url, user_id="U7")
    await take_command(redis)
    await outcomes.apply(redis, make_plan(await request_record(redis, command.request_id)))
    await ensure_group(redis, keys.REPLIES, keys.REPLIES_GROUP)
    reply: Any = await redis.xreadgroup(keys.REPLIES_GROUP, "n1", {keys.REPLIES: ">"}, count=1)
    [[_, [(entry_id, fields)]]] = reply
    return PendingEntry(keys.REPLIES, keys.REPLIES_GROUP, text(entry_id), text_map(fields))


def _rejected(record: Any) -> Plan:
    return transitions.rejected(record, datetime.now(UTC), "bad_request", "no <!channel> schedule")


def _paused(record: Any) -> Plan:
    return transitions.schedule_changed(record, datetime.now(UTC))


async def test_reply_goes_to_response_url_while_valid(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """Within 30 min the outcome goes ephemerally to the response_url, Glider text escaped."""
    delivery = await outcome(any_redis, fake_slack.response_url("r1"), _rejected, Action.PAUSE)
    await notifier(any_redis, slack).handle(delivery)
    [call] = fake_slack.calls_to(RESPONSE)
    assert call.path == "/response/r1"
    assert call.payload["response_type"] == "ephemeral"
    assert "no &lt;!channel&gt; schedule" in call.payload["text"]
    assert "<!channel>" not in str(call.payload)
    assert fake_slack.calls_to("chat.postMessage") == []
    request_id = delivery.fields["request_id"]
    assert await any_redis.hget(keys.request(request_id), REPLY_USES) == b"1"
    assert await pending_rows(any_redis, keys.REPLIES, keys.REPLIES_GROUP) == []


async def test_expired_response_url_falls_back_to_a_direct_message(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """After 30 minutes the requester gets a DM: conversations.open then chat.postMessage."""
    delivery = await outcome(any_redis, fake_slack.response_url(), _paused, Action.PAUSE)
    await notifier(any_redis, slack, minutes_later=31).handle(delivery)
    assert fake_slack.calls_to(RESPONSE) == []
    [opened] = fake_slack.calls_to("conversations.open")
    assert opened.payload["users"] == "U7"
    [posted] = fake_slack.calls_to("chat.postMessage")
    assert posted.payload["channel"] == "DU7"
    assert "paused" in posted.payload["text"]


async def test_spent_response_url_falls_back_to_a_direct_message(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """Once the response_url was used 5 times, the next reply is a DM."""
    delivery = await outcome(any_redis, fake_slack.response_url(), _paused, Action.PAUSE)
    await any_redis.hset(keys.request(delivery.fields["request_id"]), REPLY_USES, 5)
    await notifier(any_redis, slack).handle(delivery)
    assert fake_slack.calls_to(RESPONSE) == []
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_refused_response_url_falls_back_to_a_direct_message(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """A response_url Slack answers 404 for (expired early) does not swallow the reply."""
    fake_slack.fail_next(1, status=404, retry_after=None, method=RESPONSE)
    delivery = await outcome(any_redis, fake_slack.response_url(), _paused, Action.PAUSE)
    await notifier(any_redis, slack).handle(delivery)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_response_url_on_another_host_is_never_contacted(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi, receiver: Receiver
) -> None:
    """A response_url naming a host outside SLACK_RESPONSE_URL_HOSTS gets nothing (here a
    live server on loopback under another name); the requester gets a DM instead."""
    port = receiver.base_url.rsplit(":", 1)[1]
    delivery = await outcome(any_redis, f"http://localhost:{port}/steal", _paused, Action.PAUSE)
    await notifier(any_redis, slack).handle(delivery)
    assert receiver.requests == []
    assert fake_slack.calls_to(RESPONSE) == []
    [posted] = fake_slack.calls_to("chat.postMessage")
    assert posted.payload["channel"] == "DU7"
    assert await any_redis.hget(keys.request(delivery.fields["request_id"]), REPLY_USES) is None


async def test_post_response_refuses_a_host_outside_the_list(slack: SlackApi) -> None:
    """SlackApi.post_response itself never POSTs to a host outside the list."""
    with pytest.raises(DisallowedResponseUrl, match=r"'example\.com'"):
        await slack.post_response("https://example.com/hook", {"text": "x"})


async def test_slack_rate_limit_is_waited_out(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi, waits: Waits
) -> None:
    """chat.postMessage answering 429 Retry-After: 4 is sent again after 4 s."""
    fake_slack.fail_next(1, status=429, retry_after=4, method="chat.postMessage")
    delivery = await outcome(any_redis, None, _paused, Action.PAUSE)
    await notifier(any_redis, slack).handle(delivery)
    assert waits == [4.0]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_reply_nobody_can_receive_is_dead_lettered_and_noted_on_the_record(
    any_redis: aioredis.Redis, fake_slack: FakeSlack
) -> None:
    """No response_url and no bot token: nothing sent, not retried forever, but a replayable
    dead letter naming the request, and the record says the requester was not told."""
    no_token = create_slack_api(load_settings(slack_api_url=fake_slack.api_url))
    try:
        delivery = await outcome(any_redis, None, _paused, Action.PAUSE)
        await notifier(any_redis, no_token).handle(delivery)
    finally:
        await no_token.close()
    assert fake_slack.calls == []
    assert await pending_rows(any_redis, keys.REPLIES, keys.REPLIES_GROUP) == []
    [letter] = (await dead_letters.page(any_redis, stream=None, cursor=None, limit=10))[0]
    request_id = delivery.fields["request_id"]
    assert letter.requestId == request_id
    assert "no way left to tell the requester" in letter.reason
    record = await request_record(any_redis, request_id)
    assert record.reply_status == "not_sent"
    assert record.reply_dead == letter.id


async def test_reply_for_unknown_request_is_dead_lettered(
    any_redis: aioredis.Redis, slack: SlackApi
) -> None:
    """A reply entry naming no known request goes to the replies dead-letter stream."""
    await ensure_group(any_redis, keys.REPLIES, keys.REPLIES_GROUP)
    entry_id = await any_redis.xadd(keys.REPLIES, {"request_id": "req_gone", "kind": "final"})
    await any_redis.xreadgroup(keys.REPLIES_GROUP, "n1", {keys.REPLIES: ">"}, count=1)
    delivery = PendingEntry(
        keys.REPLIES,
        keys.REPLIES_GROUP,
        text(entry_id),
        {"request_id": "req_gone", "kind": "final"},
    )
    await notifier(any_redis, slack).handle(delivery)
    assert await any_redis.xlen(keys.REPLIES_DEAD) == 1


async def test_stale_awaiting_user_update_is_skipped(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """An awaiting_user update read after the operation already ended sends nothing."""
    command = await queue_command(any_redis, response_url=fake_slack.response_url())
    await take_command(any_redis)
    now = datetime.now(UTC)
    record = await request_record(any_redis, command.request_id)
    await outcomes.apply(any_redis, transitions.submitted(record, now, "op-1", now, now))
    for state in ("awaiting_user", "completed"):
        current = await request_record(any_redis, command.request_id)
        operation = Operation.model_validate(
            {"operationId": "op-1", "portfolioId": "pf_1", "state": state}
        )
        plan = (
            transitions.finished(current, now, operation)
            if state == "completed"
            else transitions.progressed(current, now, operation, now)
        )
        await outcomes.apply(any_redis, plan)
    await ensure_group(any_redis, keys.REPLIES, keys.REPLIES_GROUP)
    reply: Any = await any_redis.xreadgroup(keys.REPLIES_GROUP, "n1", {keys.REPLIES: ">"}, count=2)
    [[_, entries]] = reply
    sender = notifier(any_redis, slack)
    for entry_id, fields in entries:
        await sender.handle(
            PendingEntry(keys.REPLIES, keys.REPLIES_GROUP, text(entry_id), text_map(fields))
        )
    [call] = fake_slack.calls_to(RESPONSE)
    assert "completed" in call.payload["text"]
    assert await pending_rows(any_redis, keys.REPLIES, keys.REPLIES_GROUP) == []


async def test_a_reply_read_again_after_its_group_was_recreated_is_not_sent_twice(
    any_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """XGROUP DESTROY on a stream that stays: the group comes back from id 0 and every
    reply is read again; one the record says was sent is acknowledged, not sent again."""
    delivery = await outcome(any_redis, fake_slack.response_url("r1"), _rejected, Action.PAUSE)
    sender = notifier(any_redis, slack)
    await sender.handle(delivery)
    await any_redis.xgroup_destroy(keys.REPLIES, keys.REPLIES_GROUP)
    await ensure_group(any_redis, keys.REPLIES, keys.REPLIES_GROUP)
    reply: Any = await any_redis.xreadgroup(keys.REPLIES_GROUP, "n1", {keys.REPLIES: ">"})
    [[_, [(entry_id, fields)]]] = reply
    again = PendingEntry(keys.REPLIES, keys.REPLIES_GROUP, text(entry_id), text_map(fields))
    await sender.handle(again)
    assert len(fake_slack.calls_to(RESPONSE)) == 1
    assert await pending_rows(any_redis, keys.REPLIES, keys.REPLIES_GROUP) == []
