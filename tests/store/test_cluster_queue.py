"""The web process's group commit (``enqueue_many``) on a three-master Redis Cluster."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id
from relay.store import keys
from relay.store.abandon import Settled, Settlement, settle_many
from relay.store.queue import EnqueueResult, EnqueueStatus, enqueue_many
from tests.fixtures.redis import stream_entries


def _command(trigger: str, portfolio: str) -> QueuedCommand:
    return QueuedCommand(
        request_id=new_id("req"),
        action=Action.REBALANCE,
        portfolio_id=portfolio,
        requested_by=Requester(team_id="T1", user_id="U1", user_name="alice"),
        trigger_id=trigger,
    )


async def test_a_burst_is_queued_in_order_on_a_cluster(cluster_redis: aioredis.Redis) -> None:
    """A burst (the cluster client refuses scripts in a pipeline) is still queued in order:
    a repeated trigger is a duplicate and a second rebalance of a portfolio is in flight."""
    burst = [
        _command("t1", "pf_a"),
        _command("t1", "pf_a"),  # Slack's retry of the same command
        _command("t2", "pf_a"),  # another /rebalance while the first is in flight
        _command("t3", "pf_b"),
    ]
    results = await enqueue_many(cluster_redis, burst)
    assert all(isinstance(r, EnqueueResult) for r in results)
    statuses = [r.status for r in results if isinstance(r, EnqueueResult)]
    assert statuses == [
        EnqueueStatus.QUEUED,
        EnqueueStatus.DUPLICATE,
        EnqueueStatus.INFLIGHT,
        EnqueueStatus.QUEUED,
    ]
    entries = await stream_entries(cluster_redis, keys.COMMAND_STREAM)
    assert [QueuedCommand.model_validate_json(e["command"]).portfolio_id for e in entries] == [
        "pf_a",
        "pf_b",
    ]


async def test_a_burst_reloads_the_script_on_a_fresh_cluster(
    cluster_redis: aioredis.Redis,
) -> None:
    """After SCRIPT FLUSH (a restarted node) the script is loaded again and nothing is lost."""
    await enqueue_many(cluster_redis, [_command("t1", "pf_a")])
    await cluster_redis.script_flush()
    results = await enqueue_many(cluster_redis, [_command("t2", "pf_b"), _command("t3", "pf_c")])
    assert [r.status for r in results if isinstance(r, EnqueueResult)] == [
        EnqueueStatus.QUEUED,
        EnqueueStatus.QUEUED,
    ]
    assert len(await stream_entries(cluster_redis, keys.COMMAND_STREAM)) == 3


async def test_settling_on_a_cluster(cluster_redis: aioredis.Redis) -> None:
    """Settle and the tombstone check run on a cluster too: an abandoned request's late
    copy does nothing, a queued one is found."""
    landed, lost = _command("t-landed", "pf_a"), _command("t-lost", "pf_b")
    await enqueue_many(cluster_redis, [landed])
    found = await settle_many(cluster_redis, [landed, lost])
    assert found == [
        Settled(Settlement.QUEUED, landed.request_id),
        Settled(Settlement.ABANDONED, lost.request_id),
    ]
    (late,) = await enqueue_many(cluster_redis, [lost])
    assert late == EnqueueResult(EnqueueStatus.ABANDONED, lost.request_id)
    assert len(await stream_entries(cluster_redis, keys.COMMAND_STREAM)) == 1
