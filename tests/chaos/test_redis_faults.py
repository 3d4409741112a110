"""Redis behind a faulty TCP proxy (latency, resets, a blackout): every ack tells the truth.

Web and worker are real processes that reach Redis only through tests/chaos/tcp_proxy.py;
the test itself reads Redis directly. Slash commands (/rebalance, /pause, /resume, each
on its own portfolio) are sent while the proxy delays chunks by 250-950 ms, resets
connections and blacks out for a while, all bounded. Then:

- no command whose requester was told "nothing was done" (in the ack, or later through
  response_url) ever reached Glider or Redis, even after everything held on the way was
  delivered;
- every "could not confirm; checking" ack was followed by the truth through response_url;
- every command told queued (at once or "after all") reached exactly one outcome.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import redis.asyncio as aioredis

from relay.sim.server import SimServer
from relay.store import keys
from tests.chaos.checks import FAST_RECOVERY, all_final, events, records, terminal_counts
from tests.chaos.slack_driver import Acks, ready_is, send_slash
from tests.chaos.tcp_proxy import Faults, TcpProxy
from tests.fixtures.chaos import (
    RelayProcess,
    RelayProcesses,
    ServerFactory,
    SimStarter,
    full_env,
    portfolio_ids,
)
from tests.fixtures.glider import free_port
from tests.fixtures.slack import RESPONSE, FakeSlack
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

COMMANDS = 60  # 40 rebalances, 10 pauses, 10 resumes, each on its own portfolio
PACE_S = 0.15  # a slash command every 150 ms, while the faults last (about 9 s)
AFTER_ALL = re.compile(r"Queued after all: .* as `(req_[0-9A-Z]{26})`")
NOT_QUEUED_AFTER_ALL = "Not queued:"
MAX_KILLS = 4


def command_for(index: int) -> str:
    return "/rebalance" if index % 6 < 4 else ("/pause" if index % 6 == 4 else "/resume")


@dataclass
class Truth:
    """What each requester was told in the end, by portfolio."""

    queued: dict[str, str] = field(default_factory=dict)  # portfolio -> request id
    nothing_done: set[str] = field(default_factory=set)
    settled_queued: int = 0
    settled_not_queued: int = 0


def settled(slack: FakeSlack, portfolio_id: str) -> str | None:
    """The settling message a "could not confirm" ack was followed by, if any yet."""
    for call in slack.calls_to(RESPONSE):
        text = str(call.payload.get("text", ""))
        if call.path.rsplit("/", 1)[-1] == portfolio_id and (
            AFTER_ALL.search(text) or NOT_QUEUED_AFTER_ALL in text
        ):
            return text
    return None


def truth_of(acks: Acks, slack: FakeSlack) -> Truth:
    truth = Truth(queued=dict(acks.queued), nothing_done=set(acks.refused))
    for portfolio_id in acks.unknown:
        text = settled(slack, portfolio_id)
        assert text is not None, portfolio_id
        found = AFTER_ALL.search(text)
        if found:
            assert found.group(1) == acks.unknown[portfolio_id]
            truth.queued[portfolio_id] = found.group(1)
            truth.settled_queued += 1
        else:
            assert "Nothing was done" in text
            truth.nothing_done.add(portfolio_id)
            truth.settled_not_queued += 1
    return truth


class Supervisor:
    """Keeps one worker running; with ``kills``, SIGKILLs it every 1.5-3 s (at most MAX_KILLS)
    and starts another. A worker that exits on its own is counted in ``exits`` (and replaced,
    so the run still ends): it must never happen, a worker rides out its Redis link failing."""

    def __init__(self, procs: RelayProcesses, *, kills: bool) -> None:
        self.procs = procs
        self.kills_wanted = kills
        self.kills = self.restarts = self.exits = 0
        self.worker: RelayProcess | None = None
        self.rng = random.Random(5)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.worker = await self.procs.worker("w0", *FAST_RECOVERY)
        next_kill = self.rng.uniform(1.5, 3.0)
        while not self.stopping.is_set():
            # The chaos schedule: a pause, cut short when the run is over.
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=0.25)
            except TimeoutError:
                next_kill -= 0.25
            due = self.kills_wanted and self.kills < MAX_KILLS and next_kill <= 0
            if not self.worker.running:
                self.exits += 1
            elif due:
                await self.worker.kill()
                self.kills += 1
                next_kill = self.rng.uniform(1.5, 3.0)
            if not self.worker.running:
                self.restarts += 1
                self.worker = await self.procs.worker(f"w{self.restarts}", *FAST_RECOVERY)


async def send_all(http: aiohttp.ClientSession, slack: FakeSlack, acks: Acks) -> None:
    sending = []
    for index, portfolio_id in enumerate(portfolio_ids(COMMANDS)):
        task = send_slash(http, slack, portfolio_id, acks, command=command_for(index))
        sending.append(asyncio.create_task(task))
        await asyncio.sleep(PACE_S)  # a schedule, not a wait
    await asyncio.gather(*sending)


async def break_redis(proxy: TcpProxy) -> None:
    """Latency and resets, a 1.5 s blackout, then latency and resets again (about 9 s)."""
    loop = asyncio.get_running_loop()
    slow = {"latency": (0.25, 0.95), "latency_share": 0.5, "reset_share": 0.04}
    for seconds, faults in ((4.0, slow), (1.5, {"blackout": True}), (3.5, slow)):
        proxy.faults = Faults(until=loop.time() + seconds, **faults)
        await asyncio.sleep(seconds)  # the fault schedule
    proxy.faults = None


def touched_glider(sim: SimServer, portfolio_id: str) -> bool:
    """Whether any POST (rebalance, stop, start) for ``portfolio_id`` reached Glider."""
    return any(
        request.method == "POST" and f"/portfolios/{portfolio_id}/" in request.path
        for request in sim.context.chaos.journal
    )


@pytest.fixture
async def proxy(redis_servers: ServerFactory) -> AsyncIterator[TcpProxy]:
    server = await redis_servers()
    faulty = TcpProxy(server.port, max_resets=25)
    await faulty.start()
    try:
        yield faulty
    finally:
        await faulty.stop()


@pytest.mark.parametrize("kills", [False, True], ids=["steady", "sigkill"])
async def test_acks_tell_the_truth_when_redis_is_slow_resets_and_blacks_out(
    proxy: TcpProxy,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
    kills: bool,
) -> None:
    """Zero "nothing was done" for commands that ran, every unknown ack settled through
    response_url, and exactly one outcome for every command told queued."""
    sim = await chaos_sim(COMMANDS, "--op-duration", "0.3", "--cooldown", "0")
    port = free_port()
    relay_procs.env = full_env(proxy.url, sim, fake_slack, max_rps=200)
    await relay_procs.web(port)
    supervisor = Supervisor(relay_procs, kills=kills)
    supervising = asyncio.create_task(supervisor.run())
    direct = aioredis.Redis(host="127.0.0.1", port=proxy.upstream_port)
    acks = Acks()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await eventually(lambda: ready_is(http, 200), within=20)
            await asyncio.gather(send_all(http, fake_slack, acks), break_redis(proxy))
        await eventually(lambda: all(settled(fake_slack, p) for p in acks.unknown), within=30)
        truth = truth_of(acks, fake_slack)
        await eventually(lambda: all_final(direct, truth.queued.values()), within=40, step=0.2)
        await eventually(proxy.quiet, within=10)  # nothing late is still on its way
    finally:
        supervisor.stopping.set()
        await supervising
    print(  # the run's figures, for the closing note (pytest -s shows them)
        f"\nkills={supervisor.kills} exits={supervisor.exits} acks: queued={len(acks.queued)}"
        f" nothing_done={len(acks.refused)} unknown={len(acks.unknown)} unclear={len(acks.unclear)}"
        f" settled: queued={truth.settled_queued} not_queued={truth.settled_not_queued}"
        f" proxy: delayed={proxy.stats.delayed} resets={proxy.stats.resets}"
    )
    await assert_nothing_done_means_nothing(direct, sim, truth.nothing_done)
    await assert_one_outcome_each(direct, truth.queued)
    rebalances = [pid for pid in truth.queued if command_for(int(pid[-4:])) == "/rebalance"]
    operations = Counter(len(sim.context.state.operations(pid)) for pid in rebalances)
    print(f"Glider operations per rebalance told queued: {dict(operations)}")
    assert operations == Counter({1: len(rebalances)})
    assert acks.sent == COMMANDS
    assert proxy.stats.delayed > 0
    assert proxy.stats.resets > 0
    assert supervisor.exits == 0  # no worker stopped itself because its Redis link failed
    assert supervisor.worker is not None
    assert supervisor.worker.running
    if kills:
        assert supervisor.kills > 0
    await direct.aclose()


async def assert_nothing_done_means_nothing(
    direct: aioredis.Redis, sim: SimServer, portfolios: set[str]
) -> None:
    for portfolio_id in portfolios:
        assert not touched_glider(sim, portfolio_id), portfolio_id
        assert not await direct.exists(keys.portfolio_latest(portfolio_id)), portfolio_id


async def assert_one_outcome_each(direct: aioredis.Redis, queued: dict[str, str]) -> None:
    request_ids = list(queued.values())
    found = await records(direct, request_ids)
    assert all(record.state.is_final for record in found)
    counts = terminal_counts(await events(direct))
    assert Counter({rid: counts[rid] for rid in request_ids}) == Counter(
        dict.fromkeys(request_ids, 1)
    )
