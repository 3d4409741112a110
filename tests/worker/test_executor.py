"""Executor against the Glider simulator: every outcome class, and no duplicate operations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from relay.core.commands import Action
from relay.core.events import EventType
from relay.core.records import RequestState
from relay.glider import GliderClient
from relay.sim.config import ADMIN_KEY, PF_MAIN, PF_NO_SCHEDULE, PF_OTHER_TENANT, READONLY_KEY
from relay.store import keys, outcomes
from relay.worker.executor import Executor, ExecutorOptions, KeyedLocks
from tests.chaos.http_proxy import FaultKind, ProxyConfig, faulty_proxy
from tests.fixtures.glider import GliderSim, SimFactory, free_port
from tests.fixtures.worker import (
    events_of,
    eventually,
    pending_rows,
    queue_command,
    request_record,
    running,
    stream_entries,
    take_command,
)

MakeExecutor = Callable[..., Executor]


@pytest.fixture
async def make_executor(
    any_redis: aioredis.Redis, glider_sim: GliderSim
) -> AsyncIterator[MakeExecutor]:
    """Executors on the simulator; their clock and sleeps are the simulator's fake time."""
    clients = []

    def make(
        key: str | None = None,
        budget_s: float = 300.0,
        deadline_s: float = 900.0,
        url: str | None = None,
    ) -> Executor:
        client = glider_sim.client(key) if key else glider_sim.client()
        if url is not None:
            client = GliderClient(url, SecretStr(ADMIN_KEY), sleep=glider_sim.clock.sleep)
        clients.append(client)
        options = ExecutorOptions(retry_budget_s=budget_s, unsure_deadline_s=deadline_s)
        return Executor(
            any_redis,
            client,
            consumer="w1",
            options=options,
            clock=glider_sim.clock,
            sleep=glider_sim.clock.sleep,
            claim_idle_ms=200,
        )

    yield make
    for client in clients:
        await client.close()


async def _no_pending(redis: aioredis.Redis) -> None:
    assert await pending_rows(redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP) == []


async def test_rebalance_is_submitted_and_tracked(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """202: operation recorded, rebalance.submitted emitted, first poll ~2 s later, acked."""
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    await make_executor().handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    [operation] = glider_sim.state.operations(PF_MAIN)
    assert record.state is RequestState.SUBMITTED
    assert record.operation_id == operation.operation_id
    types = [e.type for e in await events_of(any_redis, command.request_id)]
    assert types == [EventType.REQUESTED, EventType.SUBMITTED]
    due_ms = await any_redis.zscore(keys.POLL_DUE, command.request_id)
    assert due_ms is not None
    now_ms = glider_sim.clock().timestamp() * 1000
    assert due_ms - now_ms == pytest.approx(2000, abs=1)
    await _no_pending(any_redis)


async def test_redelivered_command_does_not_post_twice(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """A command handled, then delivered again (its ack lost), reaches Glider once."""
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    executor = make_executor()
    await executor.handle(delivery)
    await executor.handle(delivery)
    assert glider_sim.requests("POST", "/rebalance") == 1
    assert len(glider_sim.state.operations(PF_MAIN)) == 1
    assert len(await events_of(any_redis, command.request_id)) == 2
    await _no_pending(any_redis)


async def _dead_worker_posted(redis: aioredis.Redis, sim: GliderSim, request_id: str) -> None:
    """What a worker SIGKILLed after its POST left did: noted it, and Glider ran it."""
    now_ms = int(sim.clock().timestamp() * 1000)
    assert await outcomes.begin_post(redis, request_id, now_ms)
    async with sim.client() as dead_workers_client:
        await dead_workers_client.trigger_rebalance(PF_MAIN)


async def test_crash_after_post_never_posts_again_and_waits_for_the_outcome(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    make_executor: MakeExecutor,
) -> None:
    """A worker died between POST and record, its operation still running: the redelivery
    sends nothing, and reports completed once lastRebalanceAt passes that POST."""
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    await _dead_worker_posted(any_redis, glider_sim, command.request_id)
    glider_sim.clock.advance(1)
    await make_executor().handle(delivery)
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.COMPLETED
    assert glider_sim.requests("POST", "/rebalance") == 1
    assert glider_sim.requests("GET", PF_MAIN) >= 2  # checked again until it completed
    assert len(glider_sim.state.operations(PF_MAIN)) == 1
    await _no_pending(any_redis)


async def test_crash_after_post_of_a_finished_rebalance_does_not_post_again(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    make_executor: MakeExecutor,
) -> None:
    """The dead worker's operation already completed: reported completed, no second POST."""
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    await _dead_worker_posted(any_redis, glider_sim, command.request_id)
    glider_sim.clock.advance(60)
    await make_executor().handle(delivery)
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.COMPLETED
    assert glider_sim.requests("POST", "/rebalance") == 1
    assert len(glider_sim.state.operations(PF_MAIN)) == 1
    [*_, completed] = await events_of(any_redis, command.request_id)
    assert completed.type is EventType.COMPLETED
    assert completed.data.operationId is None
    assert await any_redis.get(keys.portfolio_inflight(PF_MAIN)) is None


async def test_crash_after_post_of_a_failed_rebalance_ends_unknown_never_twice(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    make_executor: MakeExecutor,
) -> None:
    """The dead worker's operation *failed* (no trace in lastRebalanceAt): the redelivery
    never posts a second one; at the deadline it ends failed / unknown_outcome."""
    glider_sim.state.force_outcome(PF_MAIN, "failed")
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    await _dead_worker_posted(any_redis, glider_sim, command.request_id)
    glider_sim.clock.advance(60)
    started = glider_sim.clock()
    await make_executor(deadline_s=300).handle(delivery)
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.FAILED
    assert record.error_code == "unknown_outcome"
    assert record.error_message is not None
    assert "Check the portfolio on Glider" in record.error_message
    assert glider_sim.clock() - started <= timedelta(seconds=300)
    assert glider_sim.requests("POST", "/rebalance") == 1
    assert len(glider_sim.state.operations(PF_MAIN)) == 1
    await _no_pending(any_redis)


async def test_cooldown_is_rejected_with_retry_time(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """A rebalance inside Glider's cooldown: rebalance.rejected with retryAt, no retry."""
    async with glider_sim.client() as other:
        await other.trigger_rebalance(PF_MAIN)
    glider_sim.clock.advance(glider_sim.config.op_duration_s + 1)
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    await make_executor().handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.REJECTED
    assert record.error_code == "cooldown"
    assert record.retry_at is not None
    assert record.retry_at > glider_sim.clock()
    [*_, rejected] = await events_of(any_redis, command.request_id)
    assert rejected.type is EventType.REJECTED
    assert rejected.data.retryAt == record.retry_at
    assert rejected.data.error is not None
    assert rejected.data.error.code == "cooldown"
    assert glider_sim.requests("POST", "/rebalance") == 2
    assert await any_redis.get(keys.portfolio_inflight(PF_MAIN)) is None


@pytest.mark.parametrize(
    ("portfolio", "key", "code"),
    [
        (PF_OTHER_TENANT, None, "not_found"),
        (PF_MAIN, READONLY_KEY, "forbidden"),
        (PF_MAIN, "gldr_sk_wrong", "unauthorized"),
    ],
)
async def test_refusals_are_rejected_without_retry(
    any_redis: aioredis.Redis,
    glider_sim: GliderSim,
    make_executor: MakeExecutor,
    *,
    portfolio: str,
    key: str | None,
    code: str,
) -> None:
    """404 / 403 / 401 become rejected with the reason after exactly one request."""
    command = await queue_command(any_redis, portfolio_id=portfolio)
    await make_executor(key).handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.REJECTED
    assert record.error_code == code
    assert record.error_message
    assert glider_sim.requests("POST", "/rebalance") == 1
    await _no_pending(any_redis)


async def test_a_5xx_after_glider_ran_the_post_is_never_posted_again(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """A 502 answered after the operation started: no second POST; completed once
    lastRebalanceAt shows it."""
    glider_sim.chaos.fail_next(1, status=502, after=True, method="POST")
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    await make_executor().handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.COMPLETED
    assert len(glider_sim.state.operations(PF_MAIN)) == 1
    assert glider_sim.requests("POST", "/rebalance") == 1


async def test_a_5xx_before_glider_ran_the_post_ends_unknown_at_the_deadline(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """A 500 that Glider answered without running anything looks like any other 5xx: the
    relay cannot tell, so it never re-posts and, at the deadline, says so."""
    glider_sim.chaos.fail_next(1, status=500, method="POST")
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    await make_executor(deadline_s=120).handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.FAILED
    assert record.error_code == "unknown_outcome"
    assert glider_sim.requests("POST", "/rebalance") == 1
    assert glider_sim.state.operations(PF_MAIN) == []
    [*_, failed] = await events_of(any_redis, command.request_id)
    assert failed.type is EventType.FAILED
    assert await any_redis.get(keys.portfolio_inflight(PF_MAIN)) is None


async def test_posts_that_never_left_are_retried_until_the_budget(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """Connection refused proves nothing reached Glider: retried with backoff, then failed
    with that reason once the retry budget is spent."""
    closed = f"http://127.0.0.1:{free_port()}"
    command = await queue_command(any_redis, portfolio_id=PF_MAIN)
    started = glider_sim.clock()
    await make_executor(budget_s=120, url=closed).handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.FAILED
    assert record.error_code == "unavailable"
    assert record.error_message is not None
    assert "attempts" in record.error_message
    assert glider_sim.clock() - started <= timedelta(seconds=120)
    assert glider_sim.clock.sleeps[1:]  # retried, with waits between
    [*_, failed] = await events_of(any_redis, command.request_id)
    assert failed.type is EventType.FAILED
    await _no_pending(any_redis)


async def test_pause_and_resume_are_final_at_once(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """/pause then /resume: Glider's stop/start, portfolio.paused and portfolio.resumed."""
    pause = await queue_command(any_redis, Action.PAUSE, PF_MAIN)
    resume = await queue_command(any_redis, Action.RESUME, PF_MAIN)
    executor = make_executor()
    await executor.handle(await take_command(any_redis))
    detail = glider_sim.state.portfolio(PF_MAIN, "acme")
    assert detail.schedule is not None
    assert detail.schedule.status == "paused"
    await executor.handle(await take_command(any_redis))
    assert (await request_record(any_redis, pause.request_id)).state is RequestState.PAUSED
    assert (await request_record(any_redis, resume.request_id)).state is RequestState.RESUMED
    types = [e.type for e in await events_of(any_redis)]
    assert types == [EventType.PAUSED, EventType.RESUMED]
    assert await any_redis.xlen(keys.REPLIES) == 2


async def test_pause_without_schedule_is_rejected(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """400 (no schedule) on /pause: rejected with the reason; the requester hears it."""
    command = await queue_command(any_redis, Action.PAUSE, PF_NO_SCHEDULE)
    await make_executor().handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is RequestState.REJECTED
    assert record.error_code == "bad_request"
    assert await events_of(any_redis) == []
    [(_, reply)] = await stream_entries(any_redis, keys.REPLIES)
    assert reply["request_id"] == command.request_id


async def test_unreadable_entry_is_dead_lettered(
    any_redis: aioredis.Redis, make_executor: MakeExecutor
) -> None:
    """An entry that is not a command goes to the dead-letter stream, acked, with why."""
    await any_redis.xadd(keys.COMMAND_STREAM, {"command": "{not json"})
    await make_executor().handle(await take_command(any_redis))
    [(_, dead)] = await stream_entries(any_redis, keys.COMMANDS_DEAD)
    assert dead["dead_reason"].startswith("not a command")
    await _no_pending(any_redis)


async def test_consumer_loop_executes_queued_commands(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """Run as a stream consumer, the executor picks up what the Slack side queues."""
    executor = make_executor()
    async with running(executor.consumer):
        command = await queue_command(any_redis, portfolio_id=PF_MAIN)

        async def submitted() -> bool:
            record = await request_record(any_redis, command.request_id)
            return record.state is RequestState.SUBMITTED

        await eventually(submitted)
    await _no_pending(any_redis)


async def test_one_portfolios_commands_run_in_stream_order(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """/pause then /resume read in one batch are carried out in order (the pause even needs
    a retry after a 503): Glider ends active, and the events come paused then resumed."""
    glider_sim.chaos.fail_next(1, status=503, method="POST")
    await queue_command(any_redis, Action.PAUSE, PF_MAIN)
    await queue_command(any_redis, Action.RESUME, PF_MAIN)
    executor = make_executor()
    async with running(executor.consumer):

        async def both_done() -> bool:
            return bool(await any_redis.xlen(keys.REPLIES) == 2)

        await eventually(both_done)
    detail = glider_sim.state.portfolio(PF_MAIN, "acme")
    assert detail.schedule is not None
    assert detail.schedule.status == "active"
    assert [e.type for e in await events_of(any_redis)] == [EventType.PAUSED, EventType.RESUMED]


async def test_keyed_locks_are_fifo_and_forgotten() -> None:
    """Holders of one key run one at a time in arrival order; idle keys are dropped."""
    locks = KeyedLocks()
    order: list[str] = []
    gate = asyncio.Event()

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(name)
            await gate.wait()

    tasks = [asyncio.create_task(hold("pf", n)) for n in ("a", "b", "c")]
    other = asyncio.create_task(hold("other", "x"))
    await eventually(lambda: order == ["a", "x"])
    gate.set()
    await asyncio.gather(*tasks, other)
    assert order == ["a", "x", "b", "c"]
    assert len(locks) == 0


@pytest.mark.parametrize(
    ("kind", "state", "operations"),
    [
        (FaultKind.TRUNCATE, RequestState.COMPLETED, 1),
        (FaultKind.RESET_AFTER, RequestState.COMPLETED, 1),
        (FaultKind.RESET_BEFORE, RequestState.FAILED, 0),
    ],
)
async def test_a_lost_answer_to_the_post_is_resolved_from_glider_never_reposted(
    any_redis: aioredis.Redis,
    sim_factory: SimFactory,
    *,
    kind: FaultKind,
    state: RequestState,
    operations: int,
) -> None:
    """The 202 truncated or the connection reset after Glider ran the POST: completed (not
    'cooldown' from a second POST, though Glider has a cooldown); reset before Glider saw
    it: unknown_outcome, as nothing tells the two apart. One POST either way."""
    sim = await sim_factory(cooldown_s=30)
    config = ProxyConfig(rate=1.0, max_faults=1, kinds=(kind,))
    async with (
        faulty_proxy(sim.url, config) as proxy,
        GliderClient(proxy.url, SecretStr(ADMIN_KEY), sleep=sim.clock.sleep) as client,
    ):
        command = await queue_command(any_redis, portfolio_id=PF_MAIN)
        options = ExecutorOptions(unsure_deadline_s=120)
        executor = Executor(
            any_redis,
            client,
            consumer="w1",
            options=options,
            clock=sim.clock,
            sleep=sim.clock.sleep,
        )
        await executor.handle(await take_command(any_redis))
    record = await request_record(any_redis, command.request_id)
    assert record.state is state
    assert record.error_code == (None if state is RequestState.COMPLETED else "unknown_outcome")
    assert [f.kind for f in proxy.faults] == [kind]
    assert sim.requests("POST", "/rebalance") == operations
    assert len(sim.state.operations(PF_MAIN)) == operations
    await _no_pending(any_redis)


async def test_a_command_given_up_on_ends_not_processed_and_everyone_is_told(
    any_redis: aioredis.Redis, glider_sim: GliderSim, make_executor: MakeExecutor
) -> None:
    """A command the executor gives up on (its entry dead-lettered) does not wait as queued
    for good: it ends failed, not_processed, with a terminal event, a reply to the
    requester and its portfolio free for the next rebalance; what it says depends on
    whether a POST of it may have reached Glider. An ended request is left as it is."""
    executor = make_executor()
    never_posted = await queue_command(any_redis, portfolio_id=PF_MAIN)
    await executor.consumer.dead_letter(await take_command(any_redis), "delivered 6 times (max 5)")
    record = await request_record(any_redis, never_posted.request_id)
    assert record.state is RequestState.FAILED
    assert record.error_code == "not_processed"
    assert "delivered 6 times (max 5)" in (record.error_message or "")
    assert "no rebalance request of it reached Glider" in (record.error_message or "")
    types = [e.type for e in await events_of(any_redis, never_posted.request_id)]
    assert types == [EventType.REQUESTED, EventType.FAILED]
    replies = [f for _, f in await stream_entries(any_redis, keys.REPLIES)]
    assert {"request_id": never_posted.request_id, "kind": "final"}.items() <= replies[-1].items()
    assert not await any_redis.exists(keys.portfolio_inflight(PF_MAIN))
    assert glider_sim.requests("POST", "/rebalance") == 0

    in_doubt = await queue_command(any_redis, portfolio_id=PF_MAIN)
    delivery = await take_command(any_redis)
    assert await outcomes.begin_post(any_redis, in_doubt.request_id, 1_800_000_000_000)
    await executor.consumer.dead_letter(delivery, "delivered 6 times (max 5)")
    record = await request_record(any_redis, in_doubt.request_id)
    assert record.error_code == "not_processed"
    assert "may have reached Glider" in (record.error_message or "")

    ended = await queue_command(any_redis, Action.PAUSE, PF_MAIN)
    delivery = await take_command(any_redis)
    await executor.handle(delivery)
    await executor.consumer.dead_letter(delivery, "a late copy")
    assert (await request_record(any_redis, ended.request_id)).state is RequestState.PAUSED
    assert len(await events_of(any_redis, ended.request_id)) == 1
