"""The Redis design runs unchanged on a three-master Redis Cluster (one hash tag, one slot)."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id
from relay.store import keys
from relay.store.queue import EnqueueStatus, enqueue
from relay.store.requests import RequestStore
from tests.fixtures.redis import stream_entries


def _command(trigger: str, portfolio: str = "pf_cluster") -> QueuedCommand:
    return QueuedCommand(
        request_id=new_id("req"),
        action=Action.REBALANCE,
        portfolio_id=portfolio,
        requested_by=Requester(team_id="T1", user_id="U1", user_name="alice"),
        trigger_id=trigger,
    )


async def test_enqueue_on_cluster(cluster_redis: aioredis.Redis) -> None:
    """The multi-key enqueue script runs on a cluster and dedupes exactly as on one server."""
    first = await enqueue(cluster_redis, _command("t1"))
    assert first.status is EnqueueStatus.QUEUED
    assert (await enqueue(cluster_redis, _command("t1"))).status is EnqueueStatus.DUPLICATE
    assert (await enqueue(cluster_redis, _command("t2"))).status is EnqueueStatus.INFLIGHT
    assert len(await stream_entries(cluster_redis, keys.COMMAND_STREAM)) == 1
    assert len(await stream_entries(cluster_redis, keys.EVENTS)) == 1
    record = await RequestStore(cluster_redis).get(first.request_id)
    assert record is not None
    assert record.portfolio_id == "pf_cluster"
