"""Poller against the Glider simulator: each terminal state, awaiting_user, stuck, leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.core.events import EventType
from relay.core.poll_policy import PollPolicy
from relay.core.record_codec import pack
from relay.core.records import RequestState
from relay.glider import GliderClient
from relay.sim.config import ADMIN_KEY, PF_MAIN, PF_OTHER_TENANT, PF_SHORT, PF_ULID
from relay.store import keys
from relay.store.audit import AuditFilter, AuditStore
from relay.store.connection import text
from relay.store.ratelimit import SharedRateLimiter
from relay.worker.executor import Executor
from relay.worker.poller import Poller, PollerOptions
from tests.fixtures.glider import GliderSim
from tests.fixtures.redis import FailingCalls
from tests.fixtures.worker import (
    events_of,
    eventually,
    queue_command,
    request_record,
    stream_entries,
    take_command,
)

Submit = Callable[[str], Awaitable[str]]


@pytest.fixture
async def client(glider_sim: GliderSim) -> AsyncIterator[GliderClient]:
    async with glider_sim.client(max_retries=0) as glider:
        yield glider


async def submit_on(
    redis: aioredis.Redis, sim: GliderSim, client: GliderClient, portfolio_id: str
) -> str:
    """Queue a /rebalance and let an executor submit it; returns the request id."""
    command = await queue_command(redis, portfolio_id=portfolio_id)
    executor = Executor(redis, client, consumer="w1", clock=sim.clock)
    await executor.handle(await take_command(redis))
    return command.request_id


@pytest.fixture
def submit(any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient) -> Submit:
    """``submit_on`` the default simulator."""

    async def run(portfolio_id: str) -> str:
        return await submit_on(any_redis, glider_sim, client, portfolio_id)

    return run


def make_poller(
    redis: aioredis.Redis, sim: GliderSim, client: GliderClient, **options: Any
) -> Poller:
    policy = options.pop("policy", PollPolicy(jitter=0))
    limiter = options.pop("limiter", None)
    return Poller(
        redis,
        client,
        policy=policy,
        options=PollerOptions(**options),
        clock=sim.clock,
        limiter=limiter,
    )


async def _poll_until_final(poller: Poller, sim: GliderSim, redis: aioredis.Redis) -> int:
    """Advance fake time to each due poll and run it, until nothing is tracked; polls made."""
    polls = 0
    while await redis.zcard(keys.POLL_DUE):
        first: Any = await redis.zrange(keys.POLL_DUE, 0, 0, withscores=True)
        [(_, due_ms)] = first
        sim.clock.advance(max(0.0, float(due_ms) / 1000 - sim.clock().timestamp()))
        polls += await poller.tick()
        assert polls < 100
    return polls


@pytest.mark.parametrize(
    ("outcome", "event", "state"),
    [
        ("completed", EventType.COMPLETED, RequestState.COMPLETED),
        ("failed", EventType.FAILED, RequestState.FAILED),
        ("cancelled", EventType.CANCELLED, RequestState.CANCELLED),
    ],
)
async def test_operation_is_followed_to_its_end(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    submit: Submit,
    *,
    outcome: Any,
    event: EventType,
    state: RequestState,
) -> None:
    """Polls until Glider's terminal state; records it, emits its event, frees the portfolio."""
    glider_sim.state.force_outcome(PF_MAIN, outcome, error="slippage <!channel>")
    request_id = await submit(PF_MAIN)
    polls = await _poll_until_final(
        make_poller(any_redis, glider_sim, client), glider_sim, any_redis
    )
    record = await request_record(any_redis, request_id)
    assert record.state is state
    assert polls >= 2
    [*_, last] = await events_of(any_redis, request_id)
    assert last.type is event
    assert last.data.operationId == record.operation_id
    if state is RequestState.FAILED:
        assert last.data.error is not None
        assert last.data.error.message == "slippage <!channel>"
    assert await any_redis.get(keys.portfolio_inflight(PF_MAIN)) is None
    [(_, reply)] = await stream_entries(any_redis, keys.REPLIES)
    assert reply == {"request_id": request_id, "kind": "final"}


async def test_awaiting_user_is_announced_once_and_polling_continues(
    any_redis: aioredis.Redis, sim_factory: Any
) -> None:
    """awaiting_user: one rebalance.awaiting_user (and reply), then the final outcome."""
    sim: GliderSim = await sim_factory(op_duration_s=60)
    sim.state.force_outcome(PF_MAIN, "completed", detour="awaiting_user")
    async with sim.client(max_retries=0) as glider:
        request_id = await submit_on(any_redis, sim, glider, PF_MAIN)
        await _poll_until_final(make_poller(any_redis, sim, glider), sim, any_redis)
    types = [e.type for e in await events_of(any_redis, request_id)]
    assert types.count(EventType.AWAITING_USER) == 1
    assert types[-1] is EventType.COMPLETED
    kinds = [fields["kind"] for _, fields in await stream_entries(any_redis, keys.REPLIES)]
    assert kinds == ["awaiting_user", "final"]


async def test_operation_past_the_deadline_is_stuck(
    any_redis: aioredis.Redis, sim_factory: Any
) -> None:
    """No terminal state by the deadline: state stuck, rebalance.failed with code stuck."""
    sim: GliderSim = await sim_factory(op_duration_s=10_000)
    async with sim.client(max_retries=0) as glider:
        request_id = await submit_on(any_redis, sim, glider, PF_MAIN)
        policy = PollPolicy(deadline_s=120, jitter=0)
        await _poll_until_final(make_poller(any_redis, sim, glider, policy=policy), sim, any_redis)
    record = await request_record(any_redis, request_id)
    assert record.state is RequestState.STUCK
    [*_, last] = await events_of(any_redis, request_id)
    assert last.type is EventType.FAILED
    assert last.data.state == "stuck"
    assert last.data.error is not None
    assert last.data.error.code == "stuck"


async def test_dead_pollers_lease_comes_due_again(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """An operation claimed by a poller that died is polled by another once the lease ends."""
    request_id = await submit(PF_MAIN)
    glider_sim.clock.advance(2)
    dead = make_poller(any_redis, glider_sim, client, lease_ms=30_000)
    claimed = await dead._claim_and_start(1)  # it claims, then "dies" before polling
    for task in claimed:
        task.cancel()
    await asyncio.gather(*claimed, return_exceptions=True)
    alive = make_poller(any_redis, glider_sim, client)
    assert await alive.tick() == 0
    glider_sim.clock.advance(30)
    assert await alive.tick() == 1
    assert (await request_record(any_redis, request_id)).state is RequestState.COMPLETED


async def test_failed_poll_is_rescheduled_not_lost(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """A 5xx on the GET changes nothing but the due time; the next poll records the end."""
    request_id = await submit(PF_MAIN)
    glider_sim.clock.advance(10)
    glider_sim.chaos.fail_next(1, status=503, method="GET")
    poller = make_poller(any_redis, glider_sim, client)
    assert await poller.tick() == 1
    assert (await request_record(any_redis, request_id)).state is RequestState.SUBMITTED
    assert await any_redis.zscore(keys.POLL_DUE, request_id) is not None
    await _poll_until_final(poller, glider_sim, any_redis)
    assert (await request_record(any_redis, request_id)).state is RequestState.COMPLETED


async def test_rate_limited_poll_slows_everyone_and_waits(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """A Glider 429 on a GET pushes the shared bucket back and the poll past Retry-After."""
    request_id = await submit(PF_MAIN)
    glider_sim.clock.advance(2)
    glider_sim.chaos.fail_next(1, status=429, method="GET")
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    limiter = SharedRateLimiter(any_redis, 10, sleep=record_wait)
    poller = make_poller(any_redis, glider_sim, client, limiter=limiter)
    now_ms = glider_sim.clock().timestamp() * 1000
    assert await poller.tick() == 1
    due_ms = await any_redis.zscore(keys.POLL_DUE, request_id)
    assert due_ms is not None
    assert due_ms >= now_ms + 2000
    await limiter.acquire()
    assert waits
    assert waits[-1] > 1


async def test_unknown_operation_fails_as_vanished(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """Glider answering 404 for a tracked operation ends it as failed, not polled forever."""
    request_id = await submit(PF_MAIN)
    key = keys.request(request_id)
    # The record's operation id (short name, chunked: relay/core/record_codec.py) replaced.
    chunks = [name for name in map(text, await any_redis.hkeys(key)) if name.startswith("op~")]
    await any_redis.hdel(key, *chunks)
    await any_redis.hset(key, mapping=pack({"operation_id": "rebalance:gone"}))  # type: ignore[arg-type]
    glider_sim.clock.advance(2)
    await make_poller(any_redis, glider_sim, client).tick()
    record = await request_record(any_redis, request_id)
    assert record.state is RequestState.FAILED
    assert record.error_code == "operation_not_found"
    assert await any_redis.zcard(keys.POLL_DUE) == 0


async def test_concurrency_bounds_one_tick(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """With three operations due and concurrency 2, one tick polls two."""
    for portfolio in (PF_MAIN, PF_ULID, PF_SHORT):
        await submit(portfolio)
    glider_sim.clock.advance(2)
    poller = make_poller(any_redis, glider_sim, client, concurrency=2)
    assert await poller.tick() == 2
    assert await poller.tick() == 1


async def test_stop_hands_back_polls_in_flight(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """A poll still waiting on Glider at stop is cancelled and made due at once."""
    request_id = await submit(PF_MAIN)
    glider_sim.clock.advance(2)
    glider_sim.chaos.latency_s = 30
    poller = make_poller(any_redis, glider_sim, client, lease_ms=60_000, idle_s=0.01)
    task = asyncio.create_task(poller.run())
    lease_ms = glider_sim.clock().timestamp() * 1000 + 60_000
    await eventually(lambda: _score_is(any_redis, request_id, lease_ms))
    poller.stop(grace_s=0.05)
    await asyncio.wait_for(task, timeout=5)
    assert (
        await any_redis.zscore(keys.POLL_DUE, request_id) == glider_sim.clock().timestamp() * 1000
    )


async def _score_is(redis: aioredis.Redis, member: str, score: float) -> bool:
    return await redis.zscore(keys.POLL_DUE, member) == score


async def test_a_lost_poll_schedule_is_no_error_and_new_work_is_followed(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """After Redis lost its data the schedule is just empty: a claim finds nothing, and an
    operation submitted afterwards is polled to its end."""
    poller = make_poller(any_redis, glider_sim, client)
    await submit(PF_MAIN)
    await any_redis.flushdb()
    assert await poller.tick() == 0
    request_id = await submit(PF_SHORT)
    await _poll_until_final(poller, glider_sim, any_redis)
    assert (await request_record(any_redis, request_id)).state is RequestState.COMPLETED


async def test_a_poll_redis_fails_under_is_made_again_and_ends_once(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    client: GliderClient,
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every poll's outcome step fails once on a reset (its reply lost after it landed, for
    the last): the poll is made again at once (not a lease later, no traceback), and the
    request ends completed with one terminal event."""
    glider_sim.state.force_outcome(PF_MAIN, "completed")
    request_id = await submit(PF_MAIN)
    failing = FailingCalls(any_redis, monkeypatch)
    poller = make_poller(any_redis, glider_sim, client)
    original = poller.poll
    attempts = 0

    async def poll_with_a_reset(request_id: str) -> None:
        nonlocal attempts
        attempts += 1
        failing.fail(attempts % 2, "EVALSHA", lands=True)  # each poll's first attempt
        try:
            await original(request_id)
        finally:
            failing.fail(0)

    monkeypatch.setattr(poller, "poll", poll_with_a_reset)
    await _poll_until_final(poller, glider_sim, any_redis)
    record = await request_record(any_redis, request_id)
    assert record.state is RequestState.COMPLETED
    assert failing.failed >= 2
    terminal = [e for e in await events_of(any_redis, request_id) if e.type is EventType.COMPLETED]
    assert len(terminal) == 1
    assert poller.polling.failures == 0


async def test_each_request_gets_one_outcome_entry_in_the_audit_log(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient, submit: Submit
) -> None:
    """Received on enqueue, one outcome.recorded (actor relay) at the end, none for the
    steps between, and Glider's text in it redacted: the API key it echoed never lands."""
    glider_sim.state.force_outcome(PF_MAIN, "failed", error=f"slippage, key {ADMIN_KEY}")
    request_id = await submit(PF_MAIN)
    poller = make_poller(any_redis, glider_sim, client)
    await _poll_until_final(poller, glider_sim, any_redis)
    assert await poller.tick() == 0  # nothing is left to record a second outcome
    entries, _ = await AuditStore(any_redis).page(AuditFilter(), limit=10)
    assert [(e.action.value, e.actor.source) for e in entries] == [
        ("outcome.recorded", "relay"),
        ("command.received", "slack"),
    ]
    outcome, received = entries
    assert (outcome.request_id, outcome.portfolio_id) == (request_id, PF_MAIN)
    assert outcome.detail is not None
    assert outcome.detail.startswith("failed (operation_failed): slippage")
    assert ADMIN_KEY not in outcome.to_json()
    assert (received.actor.user_id, received.detail) == ("U1", "rebalance")


async def test_a_rejected_command_is_audited_by_the_executor(
    any_redis: aioredis.Redis, glider_sim: GliderSim, client: GliderClient
) -> None:
    """A command Glider refuses (another tenant's portfolio: 404) ends with its entry."""
    request_id = await submit_on(any_redis, glider_sim, client, PF_OTHER_TENANT)
    record = await request_record(any_redis, request_id)
    assert record.state is RequestState.REJECTED
    entries, _ = await AuditStore(any_redis).page(AuditFilter(action="outcome"), limit=10)
    [entry] = entries
    assert (entry.request_id, entry.portfolio_id) == (request_id, PF_OTHER_TENANT)
    assert entry.detail is not None
    assert entry.detail.startswith("rejected (")
