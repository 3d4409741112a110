"""Unknown enqueue outcomes over real HTTP: the ack says so, and the truth follows.

A wrapped Redis client holds the web's first pipeline: either the write reaches
Redis and only the answer is lost (queued after all), or the write is held on
the way and replayed by the test after the web settled it (a late copy: it must
find the tombstone and do nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.background import Background
from bot.messages import Reply
from bot.settle import OutcomeChecker, settled_reply
from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id
from relay.store import keys
from relay.store.abandon import Settled, Settlement
from relay.store.connection import connect, text
from relay.store.queue import _ENQUEUE as ENQUEUE_SCRIPT
from tests.fixtures.chaos import ServerFactory
from tests.fixtures.glider import free_port
from tests.fixtures.redis import StalledRedis
from tests.fixtures.slack import RESPONSE, FakeSlack
from tests.fixtures.web import WebFactory
from tests.fixtures.worker import eventually

PF = "pf_settle"
BUDGET_S = 0.3


async def _response(slack: FakeSlack) -> str:
    (call,) = await slack.wait_for(RESPONSE, within=10)
    return str(call.payload["text"])


async def test_write_that_landed_is_told_queued_after_all(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """No answer in time: the ack says "could not confirm; checking", then response_url
    says "queued after all" with the request id the record has."""
    await any_redis.script_load(ENQUEUE_SCRIPT)  # else the held write is only a NOSCRIPT
    stalled = StalledRedis(any_redis, lands=True)
    web = await web_factory(stalled, enqueue_budget=BUDGET_S)
    ack = await web.command("/rebalance", PF)
    assert "Could not confirm" in ack["text"]
    assert "checking" in ack["text"]
    assert "Nothing was done" not in str(ack)
    told = await _response(web.slack)
    (entry,) = await web.queued()
    assert f"Queued after all: a rebalance of `{PF}` as `{entry.request_id}`" in told
    assert entry.request_id in str(ack)
    assert not await any_redis.exists(keys.abandoned(entry.request_id))


async def test_late_write_after_not_queued_does_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """The write is held on the way: the web settles it as not queued, and the same
    script arriving afterwards meets the tombstone and queues nothing."""
    await any_redis.script_load(ENQUEUE_SCRIPT)
    stalled = StalledRedis(any_redis, lands=False)
    web = await web_factory(stalled, enqueue_budget=BUDGET_S)
    ack = await web.command("/pause", f"{PF} maintenance")
    assert "Could not confirm that pausing automation of" in ack["text"]
    told = await _response(web.slack)
    assert f"Not queued: pausing automation of `{PF}`. Nothing was done." in told
    (late,) = stalled.held
    replayed = await any_redis.execute_command(*late)  # type: ignore[no-untyped-call]
    status, request_id = (text(v) for v in replayed)
    assert status == "abandoned"
    assert request_id in str(ack)
    assert await web.queued() == []
    assert not await any_redis.exists(keys.request(request_id))


async def test_unreachable_redis_is_still_nothing_was_done(web_factory: WebFactory) -> None:
    """A connection that cannot be made means the write never left: said at once."""
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        web = await web_factory(down, enqueue_budget=BUDGET_S)
        ack = await web.command("/resume", PF)
    finally:
        await down.aclose()
    assert "the relay's store is unreachable. Nothing was done." in ack["text"]
    assert web.slack.calls_to(RESPONSE) == []


async def test_out_of_memory_says_the_store_is_full(
    web_factory: WebFactory, redis_servers: ServerFactory, tmp_path: Path
) -> None:
    """Redis at maxmemory with noeviction refuses the script before it writes anything:
    the ack says the store is full and nothing was done, and nothing was."""
    server = await redis_servers()
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "1")  # every write is over the limit
        web = await web_factory(client, enqueue_budget=2.0)
        ack = await web.command("/rebalance", PF)
        assert "the relay's store is full. Nothing was done." in ack["text"]
        assert await client.xlen(keys.COMMAND_STREAM) == 0
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


def _command() -> QueuedCommand:
    return QueuedCommand(
        request_id=new_id("req"),
        action=Action.REBALANCE,
        portfolio_id=PF,
        requested_by=Requester(team_id="T1", user_id="U1"),
        response_url="https://hooks.slack.invalid/response/1",
    )


async def test_store_silent_until_the_deadline_says_still_unknown() -> None:
    """Redis never answers while the checker tries: the requester is told that it is still
    unknown and to check the status, never "nothing was done"."""
    told: list[tuple[str | None, Reply]] = []

    async def tell(url: str | None, reply: Reply) -> None:
        told.append((url, reply))

    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    background = Background()
    checker = OutcomeChecker(down, tell, background, first_check_s=0.0, deadline_s=0.5)
    try:
        assert checker.check(_command())
        await eventually(lambda: told, within=15)
    finally:
        await background.drain(5)
        await down.aclose()
    ((url, reply),) = told
    assert url == "https://hooks.slack.invalid/response/1"
    assert "Still could not confirm whether a rebalance of" in reply.text
    assert "Nothing was done" not in str(reply.payload())
    assert len(checker) == 0


@pytest.mark.parametrize("limit", [0, 2])
async def test_checker_is_bounded(fake_redis: aioredis.Redis, limit: int) -> None:
    """Past ``max_pending`` waiting commands a new one is refused (its ack says so)."""

    async def tell(url: str | None, reply: Reply) -> None:
        return None

    background = Background()
    checker = OutcomeChecker(fake_redis, tell, background, first_check_s=60, max_pending=limit)
    accepted = [checker.check(_command()) for _ in range(limit + 1)]
    assert accepted == [True] * limit + [False]
    await background.drain(0)


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (Settlement.QUEUED, "Queued after all: a rebalance of `pf_settle` as `req_1`."),
        (Settlement.DUPLICATE, "This command for `pf_settle` is already queued."),
        (Settlement.ABANDONED, "Not queued: a rebalance of `pf_settle`. Nothing was done."),
    ],
)
def test_each_settlement_tells_its_own_truth(status: Settlement, said: str) -> None:
    """Queued after all names the request; a duplicate names the earlier one; only the
    abandoned one says nothing was done."""
    reply = settled_reply(_command(), Settled(status, "req_1"))
    assert said in str(reply.payload())
    assert ("Nothing was done" in str(reply.payload())) is (status is Settlement.ABANDONED)
