"""Glider behind a faulty HTTP proxy (tests/chaos/http_proxy.py): about 8% of its requests
reset before or after Glider ran them, truncated, or held past the client's timeout, while
real workers carry out 200 rebalances (and, in the second run, are SIGKILLed at random).

Counted at the simulator: at most one operation per command. Told to each requester:
exactly what Glider's own records show, or ``unknown_outcome`` where Glider's answer to
the command's POST never reached a live worker.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest

from relay.core.post_rules import UNKNOWN_OUTCOME
from relay.core.records import RequestRecord, RequestState
from relay.sim.config import ADMIN_KEY, Outcome
from relay.sim.server import SimServer
from tests.chaos.checks import FAST_RECOVERY, all_final, events, queue, records, terminal_counts
from tests.chaos.http_proxy import FaultyProxy, ProxyConfig, faulty_proxy
from tests.chaos.monkey import Monkey
from tests.fixtures.chaos import RelayProcesses, ServerFactory, SimStarter, portfolio_ids
from tests.fixtures.slack import LOOPBACK_HOST, RESPONSE, FakeSlack
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

COMPLETING, FAILING, CANCELLED = 160, 20, 20
TIMEOUT_S = 1.5  # GLIDER_TIMEOUT_S of the workers; the proxy's delays are longer


@dataclass
class Run:
    """What one faulted run produced, for the assertions and the report."""

    sim: SimServer
    proxy: FaultyProxy
    found: list[RequestRecord]
    replies: dict[str, str]  # request id -> text of its final reply
    kills: int = 0


def forced_outcomes() -> dict[str, Outcome]:
    ids = portfolio_ids(COMPLETING + FAILING + CANCELLED)
    outcomes: dict[str, Outcome] = {pid: "failed" for pid in ids[COMPLETING : COMPLETING + FAILING]}
    return outcomes | {pid: "cancelled" for pid in ids[COMPLETING + FAILING :]}


async def faulted_run(
    server_factory: ServerFactory,
    procs: RelayProcesses,
    chaos_sim: SimStarter,
    slack: FakeSlack,
    *,
    kill: bool,
) -> Run:
    server = await server_factory()
    redis = server.client()
    ids = portfolio_ids(COMPLETING + FAILING + CANCELLED)
    sim = await chaos_sim(
        len(ids), "--op-duration", "0.5", "--cooldown", "0", outcomes=forced_outcomes()
    )
    config = ProxyConfig(rate=0.08, max_faults=80, delay_s=TIMEOUT_S + 2.5, seed=11 if kill else 10)
    async with faulty_proxy(sim.url, config) as proxy:
        procs.env = {
            "REDIS_URL": server.url,
            "GLIDER_API_URL": proxy.url,
            "GLIDER_API_KEY": ADMIN_KEY,
            "GLIDER_MAX_RPS": "200",
            "GLIDER_TIMEOUT_S": str(TIMEOUT_S),
            "SLACK_API_URL": slack.api_url,
            "SLACK_RESPONSE_URL_HOSTS": LOOPBACK_HOST,
            "RELAY_ALLOW_PRIVATE_URLS": "true",
            "RELAY_JOB_CARDS": "false",  # this test checks the response_url replies
        }
        workers = {f"w{n}": await procs.worker(f"w{n}", *FAST_RECOVERY) for n in range(3)}
        monkey = Monkey(procs, workers)
        chaos = asyncio.create_task(monkey.run()) if kill else None
        base = slack.base_url + "/response"
        request_ids = [await queue(redis, pid, response_base=base) for pid in ids]
        try:
            await eventually(lambda: all_final(redis, request_ids), within=35, step=0.2)
        finally:
            monkey.stopping.set()
            if chaos is not None:
                await chaos
    found = await records(redis, request_ids)
    assert terminal_counts(await events(redis)) == Counter(request_ids)

    def replied() -> dict[str, str]:
        calls = slack.calls_to(RESPONSE)
        return {c.path.rsplit("/", 1)[-1]: str(c.payload.get("text", "")) for c in calls}

    await eventually(lambda: set(replied()) >= set(request_ids), within=15, step=0.2)
    return Run(sim, proxy, found, replied(), kills=monkey.kills)


def assert_truthful(run: Run) -> Counter[str]:
    """At most one operation per command at Glider, and every requester told what Glider's
    records show; ``unknown_outcome`` only where the POST's answer was lost (proxy fault,
    or the worker that sent it was killed: at most one per kill). The report's counts."""
    counts: Counter[str] = Counter()
    unexplained = 0
    for record in run.found:
        pid = record.portfolio_id
        operations = run.sim.context.state.operations(pid)
        assert len(operations) <= 1, (pid, operations)
        counts[f"operations={len(operations)}"] += 1
        post_faults = run.proxy.faulted("POST", f"/{pid}/rebalance")
        if record.state is RequestState.FAILED and record.error_code == UNKNOWN_OUTCOME:
            counts[f"told unknown_outcome, glider {[op.state for op in operations]}"] += 1
            unexplained += not post_faults
            assert "Check the portfolio on Glider" in run.replies[record.request_id]
            continue
        [operation] = operations  # anything but unknown needs Glider's own record
        assert record.state.value == operation.state, (record, operation)
        assert record.operation_id in (None, operation.operation_id)
        counts[f"told {record.state.value} = glider {operation.state}"] += 1
        assert record.state.value in run.replies[record.request_id], run.replies
    assert unexplained <= run.kills, counts
    counts["glider requests"] = run.proxy.received
    counts["faults injected"] = len(run.proxy.faults)
    counts["POST faults"] = len(run.proxy.faulted("POST", "/rebalance"))
    counts["kills"] = run.kills
    print(dict(counts), Counter(f.kind.value for f in run.proxy.faults))
    return counts


async def test_proxy_faults_never_make_two_operations_or_a_wrong_outcome(
    redis_servers: ServerFactory,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """~8% of Glider requests broken: one operation per command at most, outcomes true."""
    run = await faulted_run(redis_servers, relay_procs, chaos_sim, fake_slack, kill=False)
    counts = assert_truthful(run)
    assert counts["POST faults"] >= 5
    assert counts["faults injected"] >= 15


async def test_proxy_faults_and_random_sigkills_still_never_trade_twice(
    redis_servers: ServerFactory,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """The same faults while workers are SIGKILLed and restarted at random."""
    run = await faulted_run(redis_servers, relay_procs, chaos_sim, fake_slack, kill=True)
    counts = assert_truthful(run)
    assert counts["kills"] >= 3
    assert counts["faults injected"] >= 15
