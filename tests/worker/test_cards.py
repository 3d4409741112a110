"""Job cards end to end: the Glider simulator, the Slack Web API fake over HTTP, a real
private redis-server. One message per command, updated in place through every state,
never an older version after a newer one; each fallback; a 429 storm; pause/resume."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from slack_sdk.errors import SlackApiError

from relay.core.commands import Action
from relay.core.poll_policy import PollPolicy
from relay.core.records import RequestState
from relay.glider import GliderClient
from relay.settings import load_settings
from relay.sim.config import PF_MAIN
from relay.slack.client import SlackApi, create_slack_api
from relay.store import keys
from relay.store.cards import CardStore
from relay.store.connection import text, text_map
from relay.store.pending import PendingEntry
from relay.store.queue import ensure_group
from relay.worker.executor import Executor
from relay.worker.notifier import Notifier
from relay.worker.poller import Poller, PollerOptions
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import BOT_TOKEN, LOOPBACK_HOST, RESPONSE, FakeSlack, SlackCall
from tests.fixtures.worker import queue_command, request_record, take_command


@pytest.fixture
async def slack(fake_slack: FakeSlack) -> AsyncIterator[SlackApi]:
    async def sleep(seconds: float) -> None:
        return None

    settings = load_settings(
        slack_api_url=fake_slack.api_url,
        slack_bot_token=BOT_TOKEN,
        slack_response_url_hosts=LOOPBACK_HOST,
    )
    api = create_slack_api(settings, sleep=sleep, max_retries=2)
    yield api
    await api.close()


@pytest.fixture
async def client(glider_sim: GliderSim) -> AsyncIterator[GliderClient]:
    async with glider_sim.client(max_retries=0) as glider:
        yield glider


def notifier(redis: aioredis.Redis, slack: SlackApi) -> Notifier:
    return Notifier(redis, slack, consumer="n1", cards=True)


async def drain(redis: aioredis.Redis, notifier: Notifier) -> int:
    """Hand every new card entry to the notifier, as its consumer would; how many."""
    await ensure_group(redis, keys.CARDS, keys.CARDS_GROUP)
    reply: Any = await redis.xreadgroup(keys.CARDS_GROUP, "n1", {keys.CARDS: ">"}, count=100)
    handled = 0
    for _, entries in reply or []:
        for entry_id, fields in entries:
            delivery = PendingEntry(keys.CARDS, keys.CARDS_GROUP, text(entry_id), text_map(fields))
            await notifier.handle_card(delivery)
            handled += 1
    return handled


def version(call: SlackCall) -> int:
    metadata = call.payload["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    return int(metadata["event_payload"]["version"])


def card_state(call: SlackCall) -> str:
    metadata = call.payload["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    return str(metadata["event_payload"]["state"])


async def run_rebalance(
    redis: aioredis.Redis,
    sim: GliderSim,
    glider: GliderClient,
    cards: Notifier,
    *,
    response_url: str | None,
    action: Action = Action.REBALANCE,
) -> str:
    """Queue, execute and poll one command to its end, rendering its card after each step."""
    command = await queue_command(redis, action, portfolio_id=PF_MAIN, response_url=response_url)
    await drain(redis, cards)
    await Executor(redis, glider, consumer="w1", clock=sim.clock).handle(await take_command(redis))
    await drain(redis, cards)
    poller = Poller(
        redis, glider, policy=PollPolicy(jitter=0), options=PollerOptions(), clock=sim.clock
    )
    while await redis.zcard(keys.POLL_DUE):
        first: Any = await redis.zrange(keys.POLL_DUE, 0, 0, withscores=True)
        [(_, due_ms)] = first
        sim.clock.advance(max(0.0, float(due_ms) / 1000 - sim.clock().timestamp()))
        await poller.tick()
        await drain(redis, cards)
    return command.request_id


async def test_a_rebalance_card_goes_through_every_state_on_one_message(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
) -> None:
    """Posted once when queued, then chat.update on that ts: submitted, running/retrying,
    failed with Glider's reason and the job.retry button; versions only go up."""
    glider_sim.state.force_outcome(PF_MAIN, "failed", detour="retrying", error="slippage <!here>")
    cards = notifier(real_redis, slack)
    request_id = await run_rebalance(
        real_redis, glider_sim, client, cards, response_url=fake_slack.response_url()
    )
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.payload["channel"] == "C1"
    assert card_state(post) == "queued"
    updates = fake_slack.calls_to("chat.update")
    ts = {call.payload["ts"] for call in updates}
    assert len(ts) == 1
    assert post.payload.get("ts") is None
    versions = [version(post)] + [version(call) for call in updates]
    assert versions == sorted(set(versions))
    states = [card_state(call) for call in updates]
    assert states[0] == "submitted"
    assert states[-1] == "failed"
    last = updates[-1].payload
    blocks = json.loads(last["blocks"]) if isinstance(last["blocks"], str) else last["blocks"]
    text_of = json.dumps(blocks)
    assert "slippage &lt;!here&gt;" in text_of
    assert "<!here>" not in text_of
    [button] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "job.retry"
    assert button["value"] == request_id
    shown = [c.payload["text"].split(" · ")[1].split(".")[0] for c in updates]
    assert any("Running" in s or "Retrying" in s for s in shown), shown
    # The card is the reply: no separate response_url message, and the record says so.
    assert fake_slack.calls_to(RESPONSE) == []
    record = await request_record(real_redis, request_id)
    assert (record.reply_status, record.reply_via) == ("sent", "channel")
    card = text_map(await real_redis.hgetall(keys.card(request_id)))
    assert card["r"] == card["v"] == str(max(versions))


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found", "is_archived"])
async def test_a_card_the_channel_refuses_becomes_the_reply(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
    *,
    error: str,
) -> None:
    """The card lives in the requester's reply (replace_original), its final state last."""
    glider_sim.state.force_outcome(PF_MAIN, "completed")
    fake_slack.refusals["chat.postMessage", "C1"] = error
    cards = notifier(real_redis, slack)
    request_id = await run_rebalance(
        real_redis, glider_sim, client, cards, response_url=fake_slack.response_url()
    )
    replies = fake_slack.calls_to(RESPONSE)
    assert replies
    assert all(call.payload["replace_original"] is True for call in replies)
    assert len(replies) <= 5
    assert ":white_check_mark: Completed" in replies[-1].payload["text"]
    assert fake_slack.calls_to("chat.update") == []
    record = await request_record(real_redis, request_id)
    assert (record.reply_status, record.reply_via) == ("sent", "response_url")


async def test_without_a_response_url_the_card_is_a_direct_message_kept_current(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
) -> None:
    glider_sim.state.force_outcome(PF_MAIN, "completed")
    fake_slack.refusals["chat.postMessage", "C1"] = "not_in_channel"
    cards = notifier(real_redis, slack)
    await run_rebalance(real_redis, glider_sim, client, cards, response_url=None)
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.payload["channel"] == "DU1"]
    assert len(posts) == 1
    updates = fake_slack.calls_to("chat.update")
    assert updates
    assert {c.payload["channel"] for c in updates} == {"DU1"}
    assert card_state(updates[-1]) == "completed"


async def test_a_deleted_card_falls_back_and_the_final_state_still_arrives(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
) -> None:
    """message_not_found on chat.update (someone deleted the card): the reply takes over."""
    glider_sim.state.force_outcome(PF_MAIN, "completed")
    cards = notifier(real_redis, slack)
    command = await queue_command(real_redis, portfolio_id=PF_MAIN, response_url=None)
    await drain(real_redis, cards)
    [post] = await fake_slack.wait_for("chat.postMessage")
    ts = next(c for c in fake_slack.calls if c.method == "chat.postMessage")
    assert ts.ok
    stored = text_map(await real_redis.hgetall(keys.card(command.request_id)))
    fake_slack.refusals["chat.update", stored["ts"]] = "message_not_found"
    executor = Executor(real_redis, client, consumer="w1", clock=glider_sim.clock)
    await executor.handle(await take_command(real_redis))
    await drain(real_redis, cards)
    dms = [c for c in fake_slack.calls_to("chat.postMessage") if c.payload["channel"] == "DU1"]
    assert len(dms) == 1
    assert card_state(dms[0]) == "submitted"
    assert card_state(post) == "queued"


async def test_invalid_blocks_tries_the_plain_text_card_then_falls_back(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
) -> None:
    fake_slack.refusals["chat.postMessage", "C1"] = "invalid_blocks"
    cards = notifier(real_redis, slack)
    await queue_command(real_redis, portfolio_id=PF_MAIN, response_url=fake_slack.response_url())
    await drain(real_redis, cards)
    tries = fake_slack.calls_to("chat.postMessage", include_failed=True)
    assert [c.error for c in tries] == ["invalid_blocks", "invalid_blocks"]
    assert "blocks" in tries[0].payload
    assert "blocks" not in tries[1].payload
    [reply] = fake_slack.calls_to(RESPONSE)
    assert reply.payload["replace_original"] is True


async def test_a_429_storm_delays_the_card_but_loses_nothing(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
) -> None:
    """Past the client's retries the entry stays pending (and the lock is free); the retry
    renders the latest state, once."""
    cards = notifier(real_redis, slack)
    command = await queue_command(real_redis, Action.PAUSE, portfolio_id=PF_MAIN)
    fake_slack.fail_next(3, status=429, retry_after=1, method="chat.postMessage")
    with pytest.raises(SlackApiError):
        await drain(real_redis, cards)
    assert await real_redis.exists(keys.card_lock(command.request_id)) == 0
    executor = Executor(real_redis, client, consumer="w1", clock=glider_sim.clock)
    await executor.handle(await take_command(real_redis))
    await drain(real_redis, cards)  # the paused version's entry renders the latest
    [post] = fake_slack.calls_to("chat.postMessage")
    assert card_state(post) == "paused"
    assert ":double_vertical_bar: Paused" in post.payload["text"]
    assert fake_slack.calls_to("chat.update") == []
    record = await request_record(real_redis, command.request_id)
    assert record.state is RequestState.PAUSED


async def test_pause_and_resume_cards(
    real_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    fake_slack: FakeSlack,
    slack: SlackApi,
) -> None:
    cards = notifier(real_redis, slack)
    for action, final in ((Action.PAUSE, "paused"), (Action.RESUME, "resumed")):
        await run_rebalance(real_redis, glider_sim, client, cards, response_url=None, action=action)
        assert card_state(fake_slack.calls_to("chat.update")[-1]) == final
    assert [card_state(c) for c in fake_slack.calls_to("chat.postMessage")] == ["queued"] * 2


async def test_an_older_entry_after_a_newer_render_changes_nothing(
    real_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """A redelivered first entry (its version already rendered) makes no Slack call."""
    cards = notifier(real_redis, slack)
    command = await queue_command(real_redis, portfolio_id=PF_MAIN)
    await drain(real_redis, cards)
    stale = PendingEntry(
        keys.CARDS, keys.CARDS_GROUP, "0-1", {"request_id": command.request_id, "version": "1"}
    )
    before = len(fake_slack.calls)
    await cards.handle_card(stale)
    assert len(fake_slack.calls) == before


async def test_a_card_busy_elsewhere_is_left_to_its_holder_whose_entry_covers_a_crash(
    real_redis: aioredis.Redis, fake_slack: FakeSlack, slack: SlackApi
) -> None:
    """Another notifier holds the lock: this entry is acknowledged without a Slack call.
    The holder dies (its lock runs out); its own entry, reclaimed, waits for that and renders
    the latest."""
    cards = notifier(real_redis, slack)
    command = await queue_command(real_redis, portfolio_id=PF_MAIN)
    holder = CardStore(real_redis, command.request_id, lock_ms=200)
    assert await holder.claim()
    assert await drain(real_redis, cards) == 1
    assert fake_slack.calls == []
    pending: Any = await real_redis.xpending(keys.CARDS, keys.CARDS_GROUP)
    assert pending["pending"] == 0

    # The holder's own entry, reclaimed while its lock stands, waits for the lock to run out
    # (it guarantees the card), held rather than redelivered, then renders the card.
    reclaimed = PendingEntry(
        keys.CARDS,
        keys.CARDS_GROUP,
        "0-1",
        {"request_id": command.request_id, "version": "1"},
        delivery_count=2,
    )
    await cards.handle_card(reclaimed)
    assert not await real_redis.exists(keys.card_lock(command.request_id))
    [post] = await fake_slack.wait_for("chat.postMessage")
    assert card_state(post) == "queued"


class StateAfterRead:
    """A client on which the command's next state is recorded right after the first card
    read (the MULTI of relay/store/cards.py) answers, before the reader settles: how a
    busy worker interleaves an outcome with a card's render."""

    def __init__(self, inner: aioredis.Redis, record_next: Any) -> None:
        self.inner = inner
        self.record_next = record_next
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pipeline(self, **options: Any) -> Any:
        pipe = self.inner.pipeline(**options)
        if self.fired or not options.get("transaction", True):
            return pipe
        execute = pipe.execute

        async def then_record(**kwargs: Any) -> Any:
            answer = await execute(**kwargs)
            self.fired = True
            await self.record_next()
            return answer

        pipe.execute = then_record  # type: ignore[method-assign,assignment]
        return pipe


async def test_a_state_recorded_between_a_stale_read_and_its_settle_is_rendered(
    real_redis: aioredis.Redis,
    fake_slack: FakeSlack,
    slack: SlackApi,
    glider_sim: GliderSim,
    client: GliderClient,
) -> None:
    """A redelivered entry reads its card already rendered; the executor records
    ``submitted`` before it lets go. The lock stays with it (so the new state's entry is
    acknowledged as busy elsewhere), and it renders ``submitted`` itself."""
    cards = notifier(real_redis, slack)
    command = await queue_command(real_redis, portfolio_id=PF_MAIN)
    await drain(real_redis, cards)  # v1 "queued" rendered

    async def submit() -> None:
        executor = Executor(real_redis, client, consumer="w1", clock=glider_sim.clock)
        await executor.handle(await take_command(real_redis))

    racing = notifier(StateAfterRead(real_redis, submit), slack)  # type: ignore[arg-type]
    stale = PendingEntry(
        keys.CARDS, keys.CARDS_GROUP, "0-1", {"request_id": command.request_id, "version": "1"}
    )
    await racing.handle_card(stale)
    await drain(real_redis, cards)  # the "submitted" entry: nothing left to render
    shown = [c for c in fake_slack.calls if c.ok and c.method.startswith("chat.")]
    assert [(c.method, card_state(c)) for c in shown] == [
        ("chat.postMessage", "queued"),
        ("chat.update", "submitted"),
    ]
    stored = text_map(await real_redis.hgetall(keys.card(command.request_id)))
    assert stored["v"] == stored["r"] == "2"
    assert not await real_redis.exists(keys.card_lock(command.request_id))
