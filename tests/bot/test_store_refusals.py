"""Redis refusing a write (READONLY after a failover, OOM) is answered "Not queued ...
Nothing was done": the refusal proves the script did not run (bot/store_refusals.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)

from bot.confirm_messages import CONFIRM
from bot.store_refusals import WriteRefused, refused_write
from relay.sim.config import PF_MAIN
from tests.bot.test_confirm import answer, buttons, click, confirming_web
from tests.fixtures.glider import GliderSim, free_port
from tests.fixtures.web import WebFactory


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (ReadOnlyError("You can't write against a read only replica."), WriteRefused.READ_ONLY),
        (
            ResponseError("READONLY You can't write against a read only replica. script: x"),
            WriteRefused.READ_ONLY,
        ),
        (
            OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
            WriteRefused.FULL,
        ),
        (
            ResponseError("OOM command not allowed when used memory > 'maxmemory'. script: x"),
            WriteRefused.FULL,
        ),
        (ResponseError("ERR Error running script: attempt to compare nil"), None),
        (ResponseError("READONLYISH is not a code"), None),
        (RedisConnectionError("Connection reset by peer"), None),
    ],
)
def test_only_a_refusal_of_the_write_proves_nothing_was_done(
    error: RedisError, refused: WriteRefused | None
) -> None:
    assert refused_write(error) is refused


@pytest.fixture
async def read_only(real_redis: aioredis.Redis) -> AsyncIterator[aioredis.Redis]:
    """The real server demoted to a replica of a master that is not there (a failover):
    it answers reads, and READONLY to every write. Made a master again afterwards."""
    await real_redis.replicaof("127.0.0.1", free_port())
    try:
        yield real_redis
    finally:
        await real_redis.replicaof("NO", "ONE")


async def test_a_read_only_store_is_answered_not_queued(
    web_factory: WebFactory, read_only: aioredis.Redis
) -> None:
    """The ack says plainly that nothing was queued (not "could not confirm; checking")."""
    web = await web_factory(read_only)
    ack = await web.command("/pause", "pf_1 maintenance")
    assert ack["text"].startswith(":x: Not queued: pausing automation of `pf_1`.")
    assert "read-only" in ack["text"]
    assert "Nothing was done." in ack["text"]
    assert "Could not confirm" not in str(ack)
    assert await web.queued() == []


async def test_a_click_the_store_refuses_says_nothing_was_done_and_to_click_again(
    web_factory: WebFactory, real_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    """A Confirm while Redis fails over: its answer says the store is failing over and that
    nothing was done (not that the store is unreachable), and that clicking again is safe."""
    web = await confirming_web(web_factory, real_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    await real_redis.replicaof("127.0.0.1", free_port())
    try:
        told = await answer(web, await click(web, CONFIRM, token))
    finally:
        await real_redis.replicaof("NO", "ONE")
    text = told.payload["text"]
    assert "failing over (Redis is read-only). Nothing was done." in text
    assert "unreachable" not in text
    assert "Click again" in str(told.payload["blocks"])
    assert await web.queued() == []
