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

from bot.store_refusals import WriteRefused, refused_write
from tests.fixtures.glider import free_port
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
