"""The whole relay, unchanged, on a three-master Redis Cluster: ``glider-relay web`` and
``glider-relay worker`` processes with ``REDIS_URL=redis+cluster://...``.

Every key carries the ``{gr}`` hash tag, so the queue, the outcome scripts, the
poller's leases, the shared rate limiter and the dispatcher's scripts all run in
one slot; these tests prove it end to end rather than per script.
"""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest
import redis.asyncio as aioredis

from relay.core.commands import Action
from relay.core.events import EventType
from relay.core.records import RequestState
from relay.sim.config import ADMIN_KEY, PF_ULID
from relay.store import keys
from tests.chaos.checks import (
    FAST_RECOVERY,
    all_final,
    assert_cards_in_order,
    busiest_second,
    cards_final,
    events,
    queue,
    records,
    subscribe,
)
from tests.chaos.sink import WebhookSink
from tests.chaos.slack_driver import Acks, ready_is, send_slash
from tests.fixtures.chaos import (
    RelayProcesses,
    SimStarter,
    arrival_times,
    full_env,
    portfolio_ids,
)
from tests.fixtures.glider import free_port
from tests.fixtures.slack import RESPONSE, FakeSlack
from tests.fixtures.webhooks import AUTH
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

PORTFOLIOS = 12
MAX_RPS = 8  # low, so the shared limiter visibly paces the two workers


async def test_web_and_workers_run_unchanged_on_a_redis_cluster(
    *,
    redis_cluster_url: str,
    cluster_redis: aioredis.Redis,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    webhook_sink: WebhookSink,
    fake_slack: FakeSlack,
) -> None:
    """Slash commands queued by the web process on a cluster are carried out by two workers
    (one Glider operation each, within GLIDER_MAX_RPS), their events reach a subscriber
    created through the admin API, requesters get replies, and the admin API lists them."""
    sim = await chaos_sim(PORTFOLIOS, "--op-duration", "0.3", "--cooldown", "0")
    port = free_port()
    relay_procs.env = full_env(redis_cluster_url, sim, fake_slack, max_rps=MAX_RPS, cards=True)
    web = await relay_procs.web(port)
    workers = [await relay_procs.worker(f"c{n}", *FAST_RECOVERY) for n in range(2)]
    ids = portfolio_ids(PORTFOLIOS)
    acks = Acks()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        await eventually(lambda: ready_is(http, 200), within=30)
        body = {"url": webhook_sink.url("partner"), "events": ["*"]}
        async with http.post("/v1/subscriptions", json=body, headers=AUTH) as created:
            assert created.status == 201
        for portfolio_id in ids:
            await send_slash(http, fake_slack, portfolio_id, acks)
        await send_slash(http, fake_slack, PF_ULID, acks, command="/resume")
        assert len(acks.queued) == PORTFOLIOS + 1, acks
        request_ids = list(acks.queued.values())
        await eventually(lambda: all_final(cluster_redis, request_ids), within=60, step=0.1)
        expected = 3 * PORTFOLIOS + 1  # requested, submitted, completed; resumed
        await eventually(lambda: len(webhook_sink.events("partner")) == expected, within=30)
        # Job cards are on: each requester's card in the channel is the reply.
        await eventually(lambda: cards_final(fake_slack, request_ids), within=30)
        listed = await completed_operations(http)
        replayed = await replay_one_delivery(http, expected)
        await eventually(lambda: len(webhook_sink.hits["/partner"]) == expected + 1)

    found = await records(cluster_redis, request_ids)
    assert Counter(r.state for r in found) == {
        RequestState.COMPLETED: PORTFOLIOS,
        RequestState.RESUMED: 1,
    }
    assert listed == {acks.queued[pid] for pid in ids}
    for portfolio_id in ids:
        assert len(sim.context.state.operations(portfolio_id)) == 1
    stream = await events(cluster_redis)
    assert Counter(e.type for e in stream) == {
        EventType.REQUESTED: PORTFOLIOS,
        EventType.SUBMITTED: PORTFOLIOS,
        EventType.COMPLETED: PORTFOLIOS,
        EventType.RESUMED: 1,
    }
    received = webhook_sink.events("partner")
    assert {request_id for request_id, _ in received} == set(request_ids)
    assert all(len(webhook_ids) == 1 for webhook_ids in received.values())
    assert webhook_sink.hits["/partner"][-1].webhook_id == replayed
    assert_cards_in_order(fake_slack, request_ids)
    assert fake_slack.calls_to(RESPONSE) == []  # no separate reply beside the card
    assert busiest_second(arrival_times(sim)) <= MAX_RPS + 2
    assert (await cluster_redis.xpending(keys.COMMAND_STREAM, keys.COMMANDS_GROUP))["pending"] == 0
    assert await cluster_redis.zcard(keys.POLL_DUE) == 0
    for process in [web, *workers]:
        errors = [line for line in process.log_lines() if line.get("level") == "ERROR"]
        assert errors == [], process.name
        assert await process.terminate() == 0, process.name


async def replay_one_delivery(http: aiohttp.ClientSession, expected: int) -> str:
    """List the subscriber's succeeded deliveries (all ``expected`` of them, with their
    attempts) and replay one through the admin API; its ``webhook-id``."""
    query = "/v1/deliveries?status=succeeded&limit=500"
    async with http.get(query, headers=AUTH) as response:
        assert response.status == 200
        deliveries = (await response.json())["data"]
    assert len(deliveries) == expected
    assert all(len(d["attempts"]) == 1 for d in deliveries)
    chosen = deliveries[0]
    async with http.post(f"/v1/deliveries/{chosen['id']}/replay", headers=AUTH) as response:
        assert response.status == 202
    return str(chosen["webhookId"])


async def completed_operations(http: aiohttp.ClientSession) -> set[str]:
    """Request ids ``GET /v1/operations?state=completed`` lists."""
    async with http.get("/v1/operations?state=completed&limit=500", headers=AUTH) as response:
        assert response.status == 200
        page = await response.json()
    return {item["requestId"] for item in page["data"]}


async def test_a_sigkilled_workers_work_is_taken_over_on_a_redis_cluster(
    redis_cluster_url: str,
    cluster_redis: aioredis.Redis,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    webhook_sink: WebhookSink,
) -> None:
    """kill -9 a worker on a cluster while it holds a command (its POST hanging) and a leased
    poll: another worker reclaims both (XAUTOCLAIM and lease scripts in the {gr} slot), the
    rebalance stays one Glider operation, and the subscriber gets every event once."""
    sim = await chaos_sim(2, "--op-duration", "0.3", "--cooldown", "0")
    relay_procs.env = {
        "REDIS_URL": redis_cluster_url,
        "GLIDER_API_URL": sim.url,
        "GLIDER_API_KEY": ADMIN_KEY,
        "RELAY_ALLOW_PRIVATE_URLS": "true",
    }
    await subscribe(cluster_redis, webhook_sink.url("partner"))
    doomed = await relay_procs.worker("doomed", *FAST_RECOVERY, ready=True)
    rebalance_pf, pause_pf = portfolio_ids(2)
    rebalance = await queue(cluster_redis, rebalance_pf)

    async def submitted() -> bool:
        states = await records(cluster_redis, [rebalance])
        return states[0].state is RequestState.SUBMITTED

    await eventually(submitted, within=20)
    sim.context.chaos.latency_s = 60  # from now on every answer hangs: a POST and a GET
    gets_before = sim.context.chaos.count("GET")
    pause = await queue(cluster_redis, pause_pf, Action.PAUSE)

    def holding_both() -> bool:
        """The pause's POST and a poll of the rebalance are both hanging at Glider."""
        chaos = sim.context.chaos
        return chaos.count("POST", "/stop") == 1 and chaos.count("GET") > gets_before

    await eventually(holding_both, within=20)
    await doomed.kill()
    sim.context.chaos.latency_s = 0
    rescuer = await relay_procs.worker("rescuer", *FAST_RECOVERY)
    await eventually(lambda: all_final(cluster_redis, [rebalance, pause]), within=30)
    await eventually(lambda: len(webhook_sink.events("partner")) == 4, within=20)

    found = await records(cluster_redis, [rebalance, pause])
    assert [r.state for r in found] == [RequestState.COMPLETED, RequestState.PAUSED]
    assert len(sim.context.state.operations(rebalance_pf)) == 1
    assert all(len(ids) == 1 for ids in webhook_sink.events("partner").values())
    assert rescuer.logged(f"claimed 1 idle {keys.COMMAND_STREAM} entries")
    assert (await cluster_redis.xpending(keys.COMMAND_STREAM, keys.COMMANDS_GROUP))["pending"] == 0
    assert await cluster_redis.zcard(keys.POLL_DUE) == 0
    assert await rescuer.terminate() == 0
