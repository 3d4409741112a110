"""Redis SIGKILLed mid-run and started again from its AOF (``appendfsync always``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from relay.core.events import EventType
from relay.core.records import RequestState
from tests.chaos.checks import FAST_RECOVERY, all_final, records, states
from tests.chaos.sink import WebhookSink
from tests.chaos.slack_driver import Acks, ready_is, send_slash
from tests.fixtures.chaos import (
    RelayProcesses,
    ServerFactory,
    SimStarter,
    full_env,
    portfolio_ids,
)
from tests.fixtures.glider import free_port
from tests.fixtures.slack import RESPONSE, FakeSlack
from tests.fixtures.webhooks import AUTH
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

PORTFOLIOS = 400  # one rebalance each: more than the run can send
PACE_S = 0.04  # a slash command every 40 ms, each on its own portfolio
BEFORE, AFTER = 40, 40  # commands queued before the kill and after the restart
REFUSED = 50  # acks that said "could not queue" while Redis was down


async def keep_sending(
    http: aiohttp.ClientSession,
    slack: FakeSlack,
    portfolios: Iterator[str],
    acks: Acks,
    stop: asyncio.Event,
) -> None:
    """One command every PACE_S (a schedule, not a wait), each answered on its own task."""
    sending: list[asyncio.Task[None]] = []
    for portfolio_id in portfolios:
        if stop.is_set():
            break
        sending.append(asyncio.create_task(send_slash(http, slack, portfolio_id, acks)))
        await asyncio.sleep(PACE_S)
    await asyncio.gather(*sending)


async def test_redis_restart_loses_no_queued_command_and_everyone_reconnects(
    redis_servers: ServerFactory,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    webhook_sink: WebhookSink,
    fake_slack: FakeSlack,
) -> None:
    """Redis is SIGKILLed under a stream of slash commands and restarted from its AOF: every
    command whose ack said "queued" completes, /readyz says 503 while Redis is down and 200
    after, and web and workers carry on by themselves and still exit 0 on SIGTERM."""
    server = await redis_servers(aof=True)
    sim = await chaos_sim(PORTFOLIOS, "--op-duration", "0.3", "--cooldown", "0")
    port = free_port()
    relay_procs.env = full_env(server.url, sim, fake_slack, max_rps=200)
    web = await relay_procs.web(port)
    workers = [await relay_procs.worker(f"w{n}", *FAST_RECOVERY) for n in range(2)]
    acks, stop = Acks(), asyncio.Event()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        await eventually(lambda: ready_is(http, 200), within=30)
        body = {"url": webhook_sink.url("partner"), "events": ["*"]}
        async with http.post("/v1/subscriptions", json=body, headers=AUTH) as created:
            assert created.status == 201
        sender = asyncio.create_task(
            keep_sending(http, fake_slack, iter(portfolio_ids(PORTFOLIOS)), acks, stop)
        )
        await eventually(lambda: len(acks.queued) >= BEFORE, within=30)
        async with aioredis.Redis.from_url(server.url) as before:
            open_at_kill = await not_final(before, acks.queued.values())
        await server.kill()
        await eventually(lambda: ready_is(http, 503), within=10)
        # Down long enough for every worker's loops to fail and back off (about 2 s).
        await eventually(lambda: len(acks.refused) >= REFUSED, within=30)
        for worker in workers:
            assert any("failed" in line.get("message", "") for line in worker.log_lines())
        queued_while_down = len(acks.queued)
        await server.start()
        await eventually(lambda: ready_is(http, 200), within=20)
        await eventually(lambda: len(acks.queued) >= queued_while_down + AFTER, within=30)
        stop.set()
        await sender
    told_queued = list(acks.queued.values())
    redis = server.client()
    await eventually(lambda: all_final(redis, told_queued), within=90, step=0.2)

    def terminal_delivered() -> bool:
        received = webhook_sink.events("partner")
        return all((rid, EventType.COMPLETED.value) in received for rid in told_queued)

    await eventually(terminal_delivered, within=60, step=0.2)
    await eventually(lambda: replied_to(fake_slack) >= set(acks.queued), within=30)

    assert len(told_queued) >= BEFORE + AFTER
    assert len(acks.refused) >= REFUSED
    assert open_at_kill  # some were still queued or running at Glider when Redis died
    found = await records(redis, told_queued)
    assert Counter(r.state for r in found) == {RequestState.COMPLETED: len(told_queued)}
    for portfolio_id in acks.queued:
        assert len(sim.context.state.operations(portfolio_id)) == 1, portfolio_id
    assert all(len(ids) == 1 for ids in webhook_sink.events("partner").values())
    for process in [web, *workers]:
        assert process.running, process.name
        assert await process.terminate() == 0, process.name


async def not_final(redis: aioredis.Redis, request_ids: Iterable[str]) -> list[str]:
    found = await states(redis, request_ids)
    return [rid for rid, state in found.items() if not RequestState(state or "queued").is_final]


def replied_to(slack: FakeSlack) -> set[str]:
    """Portfolios whose command's response_url got a message (the outcome reply)."""
    return {call.path.rsplit("/", 1)[-1] for call in slack.calls_to(RESPONSE)}
