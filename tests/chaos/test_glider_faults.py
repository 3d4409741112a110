"""Glider misbehaving: 20% 5xx, slow answers and a 429 storm, against three real workers.

A 5xx to a rebalance POST leaves it in doubt (a proxy may answer 502 after Glider ran it):
such a command is never re-posted; it ends completed once Glider shows it, else
``unknown_outcome``.
"""

from __future__ import annotations

from collections import Counter

import pytest
import redis.asyncio as aioredis

from relay.core.commands import Action
from relay.core.events import EventType
from relay.core.post_rules import UNKNOWN_OUTCOME
from relay.core.records import RequestState
from relay.sim.config import ADMIN_KEY, PF_NO_SCHEDULE, PF_OTHER_TENANT, PF_ULID
from relay.sim.server import SimServer
from tests.chaos.checks import (
    FAST_RECOVERY,
    all_final,
    busiest_second,
    events,
    queue,
    records,
    terminal_counts,
)
from tests.fixtures.chaos import (
    RelayProcesses,
    ServerFactory,
    SimStarter,
    arrival_times,
    portfolio_ids,
)
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

COMPLETING, FAILING, CANCELLED = 60, 10, 10  # rebalances by how Glider will end them
MAX_RPS = 20
STORM_429S = 30  # 429 answers before the storm is called off


def answered(sim: SimServer, status: int) -> int:
    """Requests the simulator answered with ``status`` (5xx: pass 500 for any of them)."""
    journal = sim.context.chaos.journal
    if status == 500:
        return sum(1 for r in journal if r.status is not None and r.status >= 500)
    return sum(1 for r in journal if r.status == status)


def got_5xx(sim: SimServer, path_suffix: str) -> bool:
    """Whether a POST to a path ending with ``path_suffix`` was answered 5xx."""
    return any(
        r.method == "POST" and r.path.endswith(path_suffix) and (r.status or 0) >= 500
        for r in sim.context.chaos.journal
    )


async def queue_all(redis: aioredis.Redis, ids: list[str]) -> dict[str, list[str]]:
    """Every kind of command, grouped by the outcome each must reach."""
    failing = ids[COMPLETING : COMPLETING + FAILING]
    cancelled = ids[COMPLETING + FAILING :]
    return {
        "completed": [await queue(redis, pid) for pid in ids[:COMPLETING]],
        "failed": [await queue(redis, pid) for pid in failing],
        "cancelled": [await queue(redis, pid) for pid in cancelled],
        "resumed": [await queue(redis, PF_ULID, Action.RESUME)],
        "rejected": [
            await queue(redis, PF_NO_SCHEDULE, Action.PAUSE),  # 400: no schedule
            await queue(redis, PF_OTHER_TENANT),  # 404: another tenant's
            *[await queue(redis, f"pf_missing_{n}") for n in range(3)],  # 404: unknown
        ],
    }


async def test_5xx_slowness_and_429_storm_end_every_command_within_the_budget(
    redis_servers: ServerFactory, relay_procs: RelayProcesses, chaos_sim: SimStarter
) -> None:
    """With 20% of Glider's answers 5xx, every answer 300 ms late and a 429 storm midway,
    every command still reaches its one clear outcome (reasons on failures and refusals),
    Glider never sees more than GLIDER_MAX_RPS requests in a second, and every worker is
    still alive and exits 0 on SIGTERM."""
    server = await redis_servers()
    redis = server.client()
    ids = portfolio_ids(COMPLETING + FAILING + CANCELLED)
    outcomes = {pid: "failed" for pid in ids[COMPLETING : COMPLETING + FAILING]}
    outcomes |= {pid: "cancelled" for pid in ids[COMPLETING + FAILING :]}
    sim = await chaos_sim(
        len(ids),
        *("--error-rate", "0.2", "--latency-ms", "300", "--op-duration", "0.5"),
        *("--cooldown", "0"),
        outcomes=outcomes,
    )
    relay_procs.env = {
        "REDIS_URL": server.url,
        "GLIDER_API_URL": sim.url,
        "GLIDER_API_KEY": ADMIN_KEY,
        "GLIDER_MAX_RPS": str(MAX_RPS),
    }
    # A POST in doubt is watched for 15 s: long enough to see through 20% 5xx and the storm.
    flags = (*FAST_RECOVERY, "--unsure-deadline-s", "15")
    workers = [await relay_procs.worker(f"w{n}", *flags) for n in range(3)]
    expected = await queue_all(redis, ids)
    request_ids = [rid for group in expected.values() for rid in group]

    async def third_final() -> bool:
        found = await records(redis, request_ids)
        return sum(r.state.is_final for r in found) >= len(request_ids) // 3

    await eventually(third_final, within=60, step=0.2)
    sim.context.chaos.ip_limit_per_s = 4  # the storm: Glider's per-IP limiter says 429
    await eventually(lambda: answered(sim, 429) >= STORM_429S, within=30, step=0.1)
    sim.context.chaos.ip_limit_per_s = None
    await eventually(lambda: all_final(redis, request_ids), within=120, step=0.2)

    found = {r.request_id: r for r in await records(redis, request_ids)}
    for state, group in expected.items():
        for request_id in group:
            record = found[request_id]
            known = sim.context.config.portfolio(record.portfolio_id) is not None
            operations = sim.context.state.operations(record.portfolio_id) if known else []
            assert len(operations) <= 1, operations  # never two Glider operations for one
            if record.error_code == UNKNOWN_OUTCOME:
                # Its POST was answered 5xx (Glider may or may not have run it) and no
                # rebalance completed since: not re-posted, and said so.
                assert record.state is RequestState.FAILED
                assert state != "completed" or not operations, record
                assert got_5xx(sim, f"/{record.portfolio_id}/rebalance"), record
                continue
            assert record.state is RequestState(state)
            if state in ("failed", "cancelled", "rejected"):
                assert record.error_code, record
                assert record.error_message, record
    stream = await events(redis)
    # One terminal event per command; a refused pause has none (docs/contract.md §5.1).
    announced = [rid for rid in request_ids if rid != expected["rejected"][0]]
    assert terminal_counts(stream) == Counter({request_id: 1 for request_id in announced})
    for event in stream:
        if event.type in (EventType.FAILED, EventType.REJECTED):
            assert event.data.error is not None
            assert event.data.error.message
    assert answered(sim, 500) >= 20
    assert answered(sim, 429) >= STORM_429S
    # +2: a request's trip across the loopback may carry it over a window's edge.
    assert busiest_second(arrival_times(sim)) <= MAX_RPS + 2
    for worker in workers:
        assert worker.running, worker.name
        assert await worker.terminate() == 0, worker.name
        assert not any("unexpectedly" in line.get("message", "") for line in worker.log_lines())
