"""A worker whose Redis link resets and blacks out keeps running, and loses nothing.

One real worker (every component: executor, poller, notifier, upkeep, dispatcher)
reaches Redis only through tests/chaos/tcp_proxy.py; the test queues commands straight
into Redis before, during and after the faults: every open connection reset, several
times; then random resets and latency; then a few seconds in which nothing moves.
Afterwards the worker is still the process it was, its ``/readyz`` said 503 during the
blackout and 200 after it, and every command reached exactly one outcome: the state it
asked for, one terminal event, one Glider operation per rebalance, the event delivered
to a subscriber and the requester told.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relay.core.commands import Action
from relay.core.records import RequestState
from relay.sim.server import SimServer
from tests.chaos.checks import (
    FAST_RECOVERY,
    TERMINAL_EVENTS,
    all_final,
    events,
    queue,
    states,
    subscribe,
)
from tests.chaos.sink import WebhookSink
from tests.chaos.tcp_proxy import Faults, TcpProxy
from tests.chaos.test_redis_state_loss import answers, metrics_text
from tests.fixtures.chaos import RelayProcesses, ServerFactory, SimStarter, full_env, portfolio_ids
from tests.fixtures.glider import free_port
from tests.fixtures.slack import RESPONSE, FakeSlack
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

PORTFOLIOS = 24
RESET_ROUNDS = 4
FLAKY_S = 3.0
BLACKOUT_S = 3.0
ACTIONS = (Action.REBALANCE, Action.REBALANCE, Action.PAUSE, Action.RESUME)
FINAL = {
    Action.REBALANCE: RequestState.COMPLETED,
    Action.PAUSE: RequestState.PAUSED,
    Action.RESUME: RequestState.RESUMED,
}
CONNECTION_ERRORS = re.compile(
    r'glider_relay_redis_errors_total\{error="ConnectionError".*\} [1-9]'
)


@pytest.fixture
async def proxy(redis_servers: ServerFactory) -> AsyncIterator[TcpProxy]:
    server = await redis_servers()
    faulty = TcpProxy(server.port, max_resets=40)
    await faulty.start()
    try:
        yield faulty
    finally:
        await faulty.stop()


class Queuer:
    """Queues one command per portfolio straight into Redis (not through the proxy)."""

    def __init__(self, direct: aioredis.Redis, response_base: str) -> None:
        self.direct = direct
        self.response_base = response_base
        self.portfolios = iter(portfolio_ids(PORTFOLIOS))
        self.queued: dict[str, tuple[str, Action]] = {}  # request id -> (portfolio, action)

    async def some(self, count: int) -> None:
        for _ in range(count):
            portfolio = next(self.portfolios)
            action = ACTIONS[len(self.queued) % len(ACTIONS)]
            request_id = await queue(
                self.direct, portfolio, action, response_base=self.response_base
            )
            self.queued[request_id] = (portfolio, action)


async def reset_rounds(proxy: TcpProxy, queuer: Queuer) -> int:
    """``RESET_ROUNDS`` times: queue two commands, wait until the worker has connected again
    since the last round, and reset every open connection; how many were reset."""
    resets, seen = 0, 0

    def reconnected() -> bool:
        return proxy.stats.connections > seen and proxy.open_connections > 0

    for _ in range(RESET_ROUNDS):
        await queuer.some(2)
        await eventually(reconnected)
        seen = proxy.stats.connections
        resets += proxy.reset_all()
    return resets


async def flaky(proxy: TcpProxy, queuer: Queuer) -> None:
    """Random resets and latency for ``FLAKY_S``, with commands queued meanwhile."""
    loop = asyncio.get_running_loop()
    proxy.faults = Faults(
        until=loop.time() + FLAKY_S,
        latency=(0.05, 0.3),
        latency_share=0.3,
        reset_share=0.05,
    )
    await queuer.some(4)
    await eventually(lambda: loop.time() > proxy.faults.until if proxy.faults else True)


async def blackout(proxy: TcpProxy, queuer: Queuer, ready_url: str) -> None:
    """Nothing moves for ``BLACKOUT_S``: /readyz says 503 meanwhile, and 200 after."""
    proxy.faults = Faults(until=asyncio.get_running_loop().time() + BLACKOUT_S, blackout=True)
    await queuer.some(4)
    await eventually(lambda: answers(ready_url, 503), within=BLACKOUT_S)
    await eventually(lambda: answers(ready_url, 200), within=20, step=0.1)
    proxy.faults = None


async def test_a_worker_survives_resets_and_a_blackout_and_loses_no_command(
    proxy: TcpProxy,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
    webhook_sink: WebhookSink,
) -> None:
    """Connections reset again and again, then at random, then a blackout: the worker stays
    up, /readyz goes 503 and back to 200, and every command queued before, during and after
    ends exactly once, as asked, with one Glider operation per rebalance."""
    sim = await chaos_sim(PORTFOLIOS, "--op-duration", "0.3", "--cooldown", "0")
    metrics_port = free_port()
    relay_procs.env = full_env(proxy.url, sim, fake_slack, max_rps=200)
    relay_procs.env["WORKER_METRICS_PORT"] = str(metrics_port)
    ready_url = f"http://127.0.0.1:{metrics_port}/readyz"
    direct = aioredis.Redis(host="127.0.0.1", port=proxy.upstream_port)
    await subscribe(direct, webhook_sink.url("all"))
    worker = await relay_procs.worker("w1", *FAST_RECOVERY, ready=True)
    queuer = Queuer(direct, fake_slack.base_url + "/response")
    try:
        await eventually(lambda: answers(ready_url, 200), within=15)
        await queuer.some(4)
        resets = await reset_rounds(proxy, queuer)
        await flaky(proxy, queuer)
        await blackout(proxy, queuer, ready_url)
        await queuer.some(PORTFOLIOS - len(queuer.queued))
        await eventually(lambda: all_final(direct, queuer.queued), within=25, step=0.2)
        assert worker.running, worker.log_path.read_text()
        await assert_one_outcome_each(direct, sim, queuer)
        await eventually(lambda: all_told(queuer, webhook_sink, fake_slack), within=15)
        assert resets >= RESET_ROUNDS
        text = await metrics_text(metrics_port)
        errors = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("glider_relay_redis_errors_total{")
        )
        print(  # the run's figures (pytest -s shows them)
            f"\ncommands={len(queuer.queued)} reset_all={resets} proxy={proxy.stats} "
            f"redis_errors_counted={errors:.0f}"
        )
        assert CONNECTION_ERRORS.search(text)
        assert not any("Traceback" in str(line) for line in worker.log_lines())
        assert not worker.logged("worker stopped")
        assert await worker.terminate() == 0
    finally:
        await direct.aclose()


async def assert_one_outcome_each(direct: aioredis.Redis, sim: SimServer, queuer: Queuer) -> None:
    found = await states(direct, queuer.queued)
    assert found == {rid: FINAL[action].value for rid, (_, action) in queuer.queued.items()}
    terminal = Counter(e.data.requestId for e in await events(direct) if e.type in TERMINAL_EVENTS)
    assert terminal == Counter(dict.fromkeys(queuer.queued, 1))
    rebalanced = [pid for pid, action in queuer.queued.values() if action is Action.REBALANCE]
    operations = Counter(len(sim.context.state.operations(pid)) for pid in rebalanced)
    assert operations == Counter({1: len(rebalanced)})


def all_told(queuer: Queuer, sink: WebhookSink, slack: FakeSlack) -> bool:
    """Every command's terminal event reached the subscriber, and its requester a reply."""
    delivered = {request_id for request_id, _type in sink.events("all")}
    replied = {call.path.rsplit("/", 1)[-1] for call in slack.calls_to(RESPONSE)}
    return set(queuer.queued) <= delivered and set(queuer.queued) <= replied
