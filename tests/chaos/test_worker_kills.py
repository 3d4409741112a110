"""Workers SIGKILLed and restarted at random while rebalances run: nothing lost, nothing twice.

Scale: issue 7's 2,000 rebalances (400 portfolios x 5 rounds, each round queued once the
previous one is final, as a /rebalance in flight refuses a second), three workers, a
started worker killed 1-2.5 s after the last replacement started (typically 10-30 kills),
two webhook subscribers. Operations take
0.3 s and have no cooldown, so the run is bounded by our own throughput: 20-70 s on
two shared cores (more with job cards: each rebalance's card is 3-4 Slack calls).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import redis.asyncio as aioredis

from relay.core.post_rules import UNKNOWN_OUTCOME
from relay.core.records import RequestRecord, RequestState
from relay.sim.config import ADMIN_KEY
from relay.sim.server import SimServer
from relay.store import keys
from tests.chaos.checks import (
    FAST_RECOVERY,
    assert_cards_in_order,
    cards_final,
    cards_not_final,
    events,
    queue,
    records,
    states,
    subscribe,
    terminal_counts,
)
from tests.chaos.monkey import Monkey
from tests.chaos.sink import WebhookSink
from tests.fixtures.chaos import (
    RelayProcesses,
    ServerFactory,
    SimStarter,
    portfolio_ids,
)
from tests.fixtures.slack import BOT_TOKEN, LOOPBACK_HOST, RESPONSE, FakeSlack
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

PORTFOLIOS = 400
ROUNDS = 5  # rebalances per portfolio, one after the other
WORKERS = 3
SUBSCRIBERS = ("partner-a", "partner-b")


async def drive(redis: aioredis.Redis, slack: FakeSlack) -> list[str]:
    """Queue ROUNDS rebalances per portfolio, each once the previous one is final."""
    base = slack.base_url + "/response"
    current = {
        pid: await queue(redis, pid, response_base=base) for pid in portfolio_ids(PORTFOLIOS)
    }
    done: list[str] = []
    rounds = Counter({pid: 1 for pid in current})

    async def progressed() -> bool:
        found = await states(redis, current.values())
        for pid, request_id in list(current.items()):
            state = found[request_id]
            if state is None or not RequestState(state).is_final:
                continue
            done.append(request_id)
            del current[pid]
            if rounds[pid] < ROUNDS:
                rounds[pid] += 1
                current[pid] = await queue(redis, pid, response_base=base)
        return not current

    try:
        # Job cards add ~3 Slack calls per rebalance: the bound allows for a loaded machine.
        await eventually(progressed, within=240, step=0.1)
    except AssertionError:
        stuck = await states(redis, current.values())
        raise AssertionError(f"{len(done)} final; still open: {Counter(stuck.values())}") from None
    return done


async def test_random_sigkills_lose_nothing_and_post_nothing_twice(
    redis_servers: ServerFactory,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    webhook_sink: WebhookSink,
    fake_slack: FakeSlack,
) -> None:
    """Every rebalance ends completed with exactly one terminal event, each is one Glider
    operation, each subscriber gets every event (repeats only under the same webhook-id)
    and each requester's job card ends in its final state, never showing an older state
    after a newer one, while workers are SIGKILLed at random."""
    server = await redis_servers()
    redis = server.client()
    sim = await chaos_sim(PORTFOLIOS, "--op-duration", "0.3", "--cooldown", "0")
    for path in SUBSCRIBERS:
        await subscribe(redis, webhook_sink.url(path))
    relay_procs.env = {
        "REDIS_URL": server.url,
        "GLIDER_API_URL": sim.url,
        "GLIDER_API_KEY": ADMIN_KEY,
        "GLIDER_MAX_RPS": "300",
        "SLACK_API_URL": fake_slack.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,  # job cards post in the command's channel
        "SLACK_RESPONSE_URL_HOSTS": LOOPBACK_HOST,
        "RELAY_ALLOW_PRIVATE_URLS": "true",
    }
    workers = {f"w{n}": await relay_procs.worker(f"w{n}", *FAST_RECOVERY) for n in range(WORKERS)}
    monkey = Monkey(relay_procs, workers)
    chaos = asyncio.create_task(monkey.run())
    try:
        request_ids = await drive(redis, fake_slack)
    finally:
        monkey.stopping.set()
        await chaos
    found = await records(redis, request_ids)
    # requested + completed, and submitted unless a redelivery found the rebalance already
    # done (the POST reached Glider before the kill; its operation id is then unknown).
    expected_events = sum(3 if r.operation_id else 2 for r in found)

    def delivered() -> bool:
        return all(len(webhook_sink.events(path)) == expected_events for path in SUBSCRIBERS)

    await eventually(delivered, within=60, step=0.2)
    # Job cards are on: the card is each requester's reply, ending in its final state.
    try:
        await eventually(lambda: cards_final(fake_slack, request_ids), within=60, step=0.5)
    except AssertionError:
        missing = cards_not_final(fake_slack, request_ids)
        stored = {rid: await redis.hgetall(keys.card(rid)) for rid in list(missing)[:5]}
        dead = await redis.xrange(keys.CARDS_DEAD, count=5)
        pending = await redis.xpending(keys.CARDS, keys.CARDS_GROUP)
        raise AssertionError(
            f"cards not final: {missing}; stored: {stored}; dead: {dead}; pending: {pending}"
        ) from None

    assert monkey.kills >= 5
    assert len(request_ids) == len(set(request_ids)) == PORTFOLIOS * ROUNDS
    # A kill between noting a POST and sending it leaves the POST in doubt for good: that
    # rebalance ends unknown_outcome (Glider has no operation for it), at most one per kill.
    unknown = [r for r in found if r.error_code == UNKNOWN_OUTCOME]
    assert len(unknown) <= monkey.kills
    assert Counter(r.state for r in found) == {
        RequestState.COMPLETED: len(request_ids) - len(unknown),
        **({RequestState.FAILED: len(unknown)} if unknown else {}),
    }, Counter((r.state, r.error_code) for r in found)
    stream = await events(redis)
    assert len(stream) == expected_events
    assert terminal_counts(stream) == Counter({request_id: 1 for request_id in request_ids})
    assert_one_glider_operation_per_command(sim, found)
    for path in SUBSCRIBERS:
        received = webhook_sink.events(path)
        assert len(received) == expected_events
        assert all(len(webhook_ids) == 1 for webhook_ids in received.values()), path
        assert {request_id for request_id, _type in received} == set(request_ids)
    assert_cards_in_order(fake_slack, request_ids)  # no older state after a newer one
    assert replied_to(fake_slack) == set()  # no separate reply beside the card
    assert (await redis.xpending(keys.COMMAND_STREAM, keys.COMMANDS_GROUP))["pending"] == 0
    assert await redis.zcard(keys.POLL_DUE) == 0
    assert await redis.xlen(keys.COMMANDS_DEAD) == 0
    for worker in monkey.workers.values():
        assert worker.running
        assert await worker.terminate() == 0


def assert_one_glider_operation_per_command(sim: SimServer, found: list[RequestRecord]) -> None:
    """Each portfolio has one operation at Glider per completed rebalance (none for one whose
    POST never left), and every operation id a record names is one of them, named once."""
    completed = Counter(r.portfolio_id for r in found if r.state is RequestState.COMPLETED)
    operations = {
        pid: [op.operation_id for op in sim.context.state.operations(pid)]
        for pid in portfolio_ids(PORTFOLIOS)
    }
    assert {pid: len(ops) for pid, ops in operations.items()} == {
        pid: completed[pid] for pid in operations
    }
    recorded = [r.operation_id for r in found if r.operation_id]
    assert len(recorded) == len(set(recorded))
    assert set(recorded) <= {op for ops in operations.values() for op in ops}
    assert len(recorded) >= len(found) * 0.9  # a few are confirmed by lastRebalanceAt instead


def replied_to(slack: FakeSlack) -> set[str]:
    """Request ids whose response_url got a message (their outcome reply)."""
    return {call.path.rsplit("/", 1)[-1] for call in slack.calls_to(RESPONSE)}
