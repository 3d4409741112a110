"""Slash commands over real HTTP: what is queued, what is acked, what is refused."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import redis.asyncio as aioredis

from bot.parse import ALL_FORMS
from relay.core.commands import Action
from relay.core.records import RequestState
from relay.slack.blocks import escape
from relay.store import keys
from relay.store.connection import connect
from relay.store.requests import RequestStore
from tests.fixtures.glider import free_port
from tests.fixtures.slack import SignedRequest, signed_headers
from tests.fixtures.web import WebFactory, WebHarness

PF = "pf_01JWZG3KH9P4N5QXJVNK7M3WTV"


def _texts(ack: dict[str, object]) -> str:
    return str(ack)


async def test_rebalance_is_queued_then_acked(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """/rebalance puts one entry on the stream, then acks naming portfolio and request id."""
    web = await web_factory(any_redis)
    ack = await web.command("/rebalance", PF, user_id="U1", user_name="alice", trigger_id="t1")
    (entry,) = await web.queued()
    assert entry.action is Action.REBALANCE
    assert entry.portfolio_id == PF
    assert entry.trigger_id == "t1"
    assert entry.request_id.startswith("req_")
    assert len(entry.request_id) == 4 + 26
    assert entry.requested_by.user_id == "U1"
    assert entry.requested_by.team_id == "T1"
    assert entry.requested_by.channel_id == "C1"
    assert entry.response_url is not None
    assert entry.response_url.startswith(web.slack.base_url)
    assert ack["response_type"] == "ephemeral"
    assert f"`{PF}`" in ack["text"]
    assert f"`{entry.request_id}`" in ack["text"]
    record = await RequestStore(any_redis).get(entry.request_id)
    assert record is not None
    assert record.state is RequestState.QUEUED


async def test_pause_and_resume_are_queued(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """/pause with a reason and /resume each queue their action."""
    web = await web_factory(any_redis)
    paused = await web.command("/pause", "pf_1 market &amp; news", user_id="U2")
    resumed = await web.command("/resume", "pf_1", user_id="U2")
    pause, resume = await web.queued()
    assert (pause.action, pause.reason) == (Action.PAUSE, "market & news")
    assert (resume.action, resume.reason) == (Action.RESUME, None)
    assert pause.request_id in paused["text"]
    assert resume.request_id in resumed["text"]
    assert "Reason: market &amp; news" in _texts(paused)


async def test_slack_retry_never_queues_twice(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A redelivery with X-Slack-Retry-Num and the same trigger id finds the first request."""
    web = await web_factory(any_redis)
    first = await web.command("/pause", "pf_1", trigger_id="same-trigger")
    again = await web.command("/pause", "pf_1", trigger_id="same-trigger", retry_num=1)
    (entry,) = await web.queued()
    assert entry.request_id in first["text"]
    assert entry.request_id in again["text"]
    assert "already queued" in _texts(again)


def _without_trigger_id(web: WebHarness, text: str, timestamp: int) -> SignedRequest:
    """A signed /pause as a client that sends no trigger_id would: same body, same signature."""
    form = {k: v for k, v in web.sign("/pause", text).form.items() if k != "trigger_id"}
    body = urlencode(form)
    return SignedRequest(body=body, headers=signed_headers(body, timestamp), form=form)


async def test_replayed_command_without_trigger_id_queues_once(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A signed command with no trigger_id, replayed inside the window, finds the first request;
    another such command (other timestamp, so another signature) queues on its own."""
    web = await web_factory(any_redis)
    now = int(time.time())
    signed = _without_trigger_id(web, "pf_1", now)
    first, replayed = await web.post(signed), await web.post(signed)
    other = await web.post(_without_trigger_id(web, "pf_1", now - 1))
    assert [first.status, replayed.status, other.status] == [200, 200, 200]
    entries = await web.queued()
    assert len(entries) == 2
    assert entries[0].request_id in str(await replayed.json())
    assert "already queued" in str(await replayed.json())
    assert entries[0].trigger_id != entries[1].trigger_id


async def test_second_rebalance_answers_with_the_one_in_flight(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """While a rebalance is in flight another names it (and its operation) and queues nothing."""
    web = await web_factory(any_redis)
    await web.command("/rebalance", PF)
    (first,) = await web.queued()
    await any_redis.hset(keys.request(first.request_id), "operation_id", "rebalance:op-7")
    second = await web.command("/rebalance", PF)
    assert len(await web.queued()) == 1
    assert f"`{first.request_id}`" in _texts(second)
    assert "`rebalance:op-7`" in _texts(second)
    assert "already in flight" in second["text"]


async def test_user_not_allowed_is_refused_and_nothing_queued(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A user outside BOT_ALLOWED_USERS gets a refusal naming who to ask; nothing is queued."""
    web = await web_factory(any_redis)
    ack = await web.command("/rebalance", PF, user_id="U666")
    assert "not allowed" in ack["text"]
    assert "<@U1>, <@U2>" in _texts(ack)
    assert "test-admin-token" not in _texts(ack)
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 0
    assert await any_redis.dbsize() == 0


async def test_unset_allowed_users_means_nobody(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """With BOT_ALLOWED_USERS unset even a would-be admin is refused."""
    web = await web_factory(any_redis, bot_allowed_users=None)
    ack = await web.command("/pause", "pf_1", user_id="U1")
    assert "Nobody is allowed yet" in _texts(ack)
    assert await any_redis.dbsize() == 0


async def test_star_allows_everyone(web_factory: WebFactory, any_redis: aioredis.Redis) -> None:
    """BOT_ALLOWED_USERS=* lets any user queue."""
    web = await web_factory(any_redis, bot_allowed_users="*")
    await web.command("/resume", "pf_1", user_id="U12345")
    assert len(await web.queued()) == 1


async def test_malformed_commands_get_usage_and_queue_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Unknown sub-command, missing or malformed id and extra junk: usage reply, nothing queued."""
    web = await web_factory(any_redis)
    cases = [
        ("/rebalance", "status", "needs a portfolio id"),
        ("/rebalance", "pf_1 now please", "Unexpected `now please`"),
        ("/rebalance", "stats pf_1", "Unexpected `pf_1`"),
        ("/pause", "pf#1", "`pf#1` is not a portfolio id"),
        ("/resume", "a" * 70, "is 70 characters long"),
    ]
    for command, text, problem in cases:
        ack = await web.command(command, text)
        assert problem in ack["text"], (command, text)
        assert ack["response_type"] == "ephemeral"
    assert await any_redis.dbsize() == 0


async def test_help_and_empty_text_show_usage(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Empty text and `help` answer with every command's forms (/pause, /resume too), for anyone."""
    web = await web_factory(any_redis)
    for command, text in (("/rebalance", ""), ("/rebalance", "help"), ("/pause", "help")):
        ack = await web.command(command, text, user_id="U666")
        for form in ALL_FORMS:
            assert escape(form) in _texts(ack), (command, text, form)
    assert await any_redis.dbsize() == 0


async def test_injection_in_user_text_is_escaped(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Mentions, links and & in a reason or a bad id come back escaped, never live."""
    web = await web_factory(any_redis)
    hostile = "<!channel> <@U1> <http://x|y> &"
    paused = await web.command("/pause", "pf_1 " + escape(hostile))
    usage = await web.command("/rebalance", escape("<!channel>"))
    assert "Reason: &lt;!channel&gt; &lt;@U1&gt; &lt;http://x|y&gt; &amp;" in _texts(paused)
    assert "`&lt;!channel&gt;` is not a portfolio id" in usage["text"]
    for ack in (paused, usage):
        for raw in ("<!channel>", "<@U1>", "<http://x|y>"):
            assert raw not in _texts(ack)
    (entry,) = await web.queued()
    assert entry.reason == hostile


async def test_redis_down_says_could_not_queue(web_factory: WebFactory) -> None:
    """With Redis unreachable the ack says nothing was done (promptly, not a Slack timeout)."""
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        web = await web_factory(down)
        ack = await web.command("/rebalance", PF)
    finally:
        await down.aclose()
    assert "Could not queue" in ack["text"]
    assert "Nothing was done" in ack["text"]
