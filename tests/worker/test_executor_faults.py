"""The executor while Redis resets under it: what Glider answered is kept, nothing is sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relay.core.events import EventType
from relay.core.records import RequestState
from relay.sim.config import PF_MAIN
from relay.store import keys, outcomes
from relay.worker.executor import Executor
from tests.fixtures.glider import GliderSim
from tests.fixtures.redis import FailingCalls
from tests.fixtures.worker import (
    events_of,
    pending_rows,
    queue_command,
    request_record,
    take_command,
)


async def _warm_scripts(redis: aioredis.Redis) -> None:
    """Load the scripts first, so that the failed call is the step itself, not its NOSCRIPT."""
    for script in (outcomes._BEGIN_POST, outcomes._APPLY):
        await redis.script_load(script.source)


@pytest.fixture
async def executor(any_redis: aioredis.Redis, glider_sim: GliderSim) -> AsyncIterator[Executor]:
    client = glider_sim.client()
    yield Executor(
        any_redis,
        client,
        consumer="w1",
        clock=glider_sim.clock,
        sleep=glider_sim.clock.sleep,
        claim_idle_ms=200,
    )
    await client.close()


@pytest.mark.parametrize("lands", [False, True], ids=["lost", "landed"])
async def test_a_reset_while_noting_the_post_posts_once(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    executor: Executor,
    monkeypatch: pytest.MonkeyPatch,
    lands: bool,
) -> None:
    """Redis fails as the POST is noted (the note lost, or landed with its reply lost): the
    POST was not sent, a landed note is taken back, and the command is posted once and
    tracked, not watched until unknown_outcome."""
    await _warm_scripts(any_redis)
    failing = FailingCalls(any_redis, monkeypatch)
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    failing.fail(1, "EVALSHA", lands=lands)
    await executor.handle(delivery)
    assert failing.failed == 1
    assert glider_sim.requests("POST", "/rebalance") == 1
    [operation] = glider_sim.state.operations(PF_MAIN)
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.SUBMITTED
    assert record.operation_id == operation.operation_id
    assert await pending_rows(any_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP) == []


@pytest.mark.parametrize("lands", [False, True], ids=["lost", "landed"])
async def test_a_reset_while_recording_the_submission_keeps_the_operation(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    executor: Executor,
    monkeypatch: pytest.MonkeyPatch,
    lands: bool,
) -> None:
    """Glider accepted the POST and Redis fails as that is recorded: the step is retried in
    place, so the operation id is kept (one submitted event, one POST, acknowledged)."""
    await _warm_scripts(any_redis)
    failing = FailingCalls(any_redis, monkeypatch)
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    failing.fail(1, "EVALSHA", lands=lands, after=1)  # the note passes, the outcome fails
    await executor.handle(delivery)
    assert failing.failed == 1
    assert glider_sim.requests("POST", "/rebalance") == 1
    [operation] = glider_sim.state.operations(PF_MAIN)
    record = await request_record(any_redis, command.request_id)
    assert record.operation_id == operation.operation_id
    types = [e.type for e in await events_of(any_redis, command.request_id)]
    assert types == [EventType.REQUESTED, EventType.SUBMITTED]
    assert await pending_rows(any_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP) == []
