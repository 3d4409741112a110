"""Group commit of slash commands: batched enqueues keep every per-command guarantee."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.enqueuer import GroupEnqueuer
from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id
from relay.store import keys
from relay.store.connection import connect, text_map
from relay.store.queue import _ENQUEUE as ENQUEUE_SCRIPT
from relay.store.queue import EnqueueNotSent, EnqueueOutcomeUnknown, EnqueueStatus, enqueue_many
from tests.fixtures.glider import free_port
from tests.fixtures.redis import StalledRedis
from tests.fixtures.worker import eventually


def _command(
    portfolio_id: str, *, trigger_id: str | None = None, action: Action = Action.REBALANCE
) -> QueuedCommand:
    return QueuedCommand(
        request_id=new_id("req"),
        action=action,
        portfolio_id=portfolio_id,
        requested_by=Requester(team_id="T1", user_id="U1"),
        trigger_id=trigger_id or new_id("trig"),
    )


async def _stream_ids(redis: aioredis.Redis) -> list[str]:
    entries = await redis.xrange(keys.COMMAND_STREAM) or []
    return [
        QueuedCommand.model_validate_json(text_map(f or {})["command"]).request_id
        for _, f in entries
    ]


async def test_concurrent_commands_are_all_queued_in_order(any_redis: aioredis.Redis) -> None:
    """Many concurrent enqueues each get their own QUEUED result and stream entry."""
    enqueuer = GroupEnqueuer(any_redis)
    commands = [_command(f"pf_{i}") for i in range(40)]
    results = await asyncio.gather(*(enqueuer.enqueue(c) for c in commands))
    assert [r.status for r in results] == [EnqueueStatus.QUEUED] * 40
    assert [r.request_id for r in results] == [c.request_id for c in commands]
    assert await _stream_ids(any_redis) == [c.request_id for c in commands]


async def test_same_trigger_in_one_batch_is_queued_once(any_redis: aioredis.Redis) -> None:
    """A retried delivery arriving alongside the first finds the first request."""
    enqueuer = GroupEnqueuer(any_redis)
    first, retry = _command("pf_1", trigger_id="t-1"), _command("pf_1", trigger_id="t-1")
    a, b = await asyncio.gather(enqueuer.enqueue(first), enqueuer.enqueue(retry))
    assert (a.status, b.status) == (EnqueueStatus.QUEUED, EnqueueStatus.DUPLICATE)
    assert b.request_id == first.request_id
    assert await _stream_ids(any_redis) == [first.request_id]


async def test_second_rebalance_in_one_batch_is_in_flight(any_redis: aioredis.Redis) -> None:
    """Two rebalances of one portfolio in one batch: the second names the first."""
    enqueuer = GroupEnqueuer(any_redis)
    first, second = _command("pf_1"), _command("pf_1")
    a, b = await asyncio.gather(enqueuer.enqueue(first), enqueuer.enqueue(second))
    assert (a.status, b.status) == (EnqueueStatus.QUEUED, EnqueueStatus.INFLIGHT)
    assert b.request_id == first.request_id


async def test_redis_down_fails_every_caller() -> None:
    """With Redis unreachable each waiting caller gets the connection error."""
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        enqueuer = GroupEnqueuer(down)
        outcomes = await asyncio.gather(
            *(enqueuer.enqueue(_command(f"pf_{i}")) for i in range(3)), return_exceptions=True
        )
    finally:
        await down.aclose()
    assert all(isinstance(o, RedisConnectionError) for o in outcomes)
    assert all(isinstance(o, EnqueueNotSent) for o in outcomes)  # provably nothing was done


async def test_write_without_an_answer_is_unknown(any_redis: aioredis.Redis) -> None:
    """Redis ran the write but its answer did not come within the budget: the caller is
    told the outcome is unknown, never that nothing was done."""
    await any_redis.script_load(ENQUEUE_SCRIPT)
    enqueuer = GroupEnqueuer(StalledRedis(any_redis, lands=True), budget=0.2)  # type: ignore[arg-type]
    command = _command("pf_ghost")
    with pytest.raises(EnqueueOutcomeUnknown):
        await enqueuer.enqueue(command)
    assert await _stream_ids(any_redis) == [command.request_id]


class _SlowConnect:
    """A client whose connections take until ``gate`` is set to be made."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.connection_pool = self
        self.connected = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_connection(self) -> Any:
        await self.gate.wait()
        connection = await self.inner.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        self.connected.set()
        return connection


async def test_caller_that_gave_up_while_connecting_is_never_written(
    any_redis: aioredis.Redis,
) -> None:
    """Still connecting when the budget ran out: "not sent" is the truth, because the
    batch drops callers that gave up before it writes."""
    slow = _SlowConnect(any_redis)
    enqueuer = GroupEnqueuer(slow, budget=0.2)  # type: ignore[arg-type]
    with pytest.raises(EnqueueNotSent):
        await enqueuer.enqueue(_command("pf_never"))
    slow.gate.set()
    await enqueuer.enqueue(last := _command("pf_last"))
    assert await _stream_ids(any_redis) == [last.request_id]


async def test_enqueue_many_reloads_a_flushed_script(real_redis: aioredis.Redis) -> None:
    """After SCRIPT FLUSH (a restarted Redis) the batch is loaded and sent again, once."""
    await enqueue_many(real_redis, [_command("pf_warm")])
    await real_redis.script_flush()
    results = await enqueue_many(real_redis, [_command("pf_1"), _command("pf_2")])
    assert [getattr(r, "status", r) for r in results] == [EnqueueStatus.QUEUED] * 2
    assert len(await _stream_ids(real_redis)) == 3


class _GatedRedis:
    """A Redis client whose pipelines wait for ``gate`` before executing (a stalled server)."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.sent = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pipeline(self, **options: Any) -> Any:
        pipe = self.inner.pipeline(**options)
        execute = pipe.execute

        async def gated_execute(**kwargs: Any) -> Any:
            self.sent.set()
            await self.gate.wait()
            return await execute(**kwargs)

        pipe.execute = gated_execute  # type: ignore[method-assign,assignment]
        return pipe


async def test_caller_that_gave_up_is_never_written(any_redis: aioredis.Redis) -> None:
    """With one batch at a time, a command whose caller timed out while Redis stalled is
    dropped, not queued later."""
    gated = _GatedRedis(any_redis)
    enqueuer = GroupEnqueuer(gated, max_batches=1)  # type: ignore[arg-type]
    first = asyncio.ensure_future(enqueuer.enqueue(_command("pf_first")))
    await asyncio.wait_for(gated.sent.wait(), 5)
    abandoned = _command("pf_abandoned")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(enqueuer.enqueue(abandoned), 0.01)
    gated.gate.set()
    await first
    last = _command("pf_last")
    await enqueuer.enqueue(last)
    queued = await _stream_ids(any_redis)
    assert abandoned.request_id not in queued
    assert queued[-1] == last.request_id
    assert len(queued) == 2


async def test_a_stalled_batch_does_not_hold_back_the_next(any_redis: aioredis.Redis) -> None:
    """One connection that never answers delays nobody else: the next command goes out on
    its own connection and is queued within the budget."""
    stalled = StalledRedis(any_redis, lands=False)
    enqueuer = GroupEnqueuer(stalled, budget=1.0)  # type: ignore[arg-type]
    stuck = asyncio.ensure_future(enqueuer.enqueue(_command("pf_stuck")))
    await eventually(lambda: stalled.held)  # the first batch is written, and hangs
    result = await enqueuer.enqueue(after := _command("pf_after"))
    assert result.status is EnqueueStatus.QUEUED
    with pytest.raises(EnqueueOutcomeUnknown):
        await stuck
    assert await _stream_ids(any_redis) == [after.request_id]
