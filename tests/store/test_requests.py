"""The request store: every read of a request record goes through it."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.core.commands import Action
from relay.core.records import TRACKED_MS, RequestState
from relay.store import keys
from relay.store.requests import RequestStore
from tests.fixtures.worker import queue_command


async def test_unknown_requests_and_portfolios_are_none(any_redis: aioredis.Redis) -> None:
    """Nothing recorded: no record, no latest request, no tracking, no post log."""
    store = RequestStore(any_redis)
    assert await store.get("req_unknown") is None
    assert await store.latest("pf_none") is None
    assert await store.tracked("req_unknown") is None
    assert await store.post_log("req_unknown") is None


async def test_get_many_keeps_order_and_skips_the_unknown(any_redis: aioredis.Redis) -> None:
    """Records come back in the order asked, without the ids that have none."""
    first = await queue_command(any_redis, Action.PAUSE, "pf_1")
    second = await queue_command(any_redis, Action.PAUSE, "pf_2")
    store = RequestStore(any_redis)
    found = await store.get_many([second.request_id, "req_gone", first.request_id])
    assert [r.request_id for r in found] == [second.request_id, first.request_id]
    assert (await store.latest("pf_2")) == found[0]


async def test_tracked_reads_the_workers_field(any_redis: aioredis.Redis) -> None:
    """The worker's tracking time is read beside the record, absent until set."""
    command = await queue_command(any_redis)
    store = RequestStore(any_redis)
    before = await store.tracked(command.request_id)
    assert before is not None
    assert before.tracked_ms is None
    assert before.record.state is RequestState.QUEUED
    await any_redis.hset(keys.request(command.request_id), TRACKED_MS, "1234")
    after = await store.tracked(command.request_id)
    assert after is not None
    assert after.tracked_ms == 1234


async def test_page_filters_by_portfolio_newest_first(any_redis: aioredis.Redis) -> None:
    """A portfolio filter keeps only its records, newest first, over several chunks."""
    ids = [
        (await queue_command(any_redis, Action.PAUSE, f"pf_{i % 2}")).request_id for i in range(6)
    ]
    page, cursor = await RequestStore(any_redis).page(portfolio="pf_0", limit=10, chunk=2)
    assert [r.request_id for r in page] == sorted(ids[0::2], reverse=True)
    assert cursor is None


async def test_page_filters_by_requester(any_redis: aioredis.Redis) -> None:
    """A requester filter keeps only that Slack user's requests (the Home tab's commands)."""
    mine = [
        (await queue_command(any_redis, user_id="U1", portfolio_id=f"pf_{i}")) for i in range(3)
    ]
    await queue_command(any_redis, user_id="U2", portfolio_id="pf_9")
    page, _ = await RequestStore(any_redis).page(requester="U1", limit=2, chunk=2)
    assert [r.request_id for r in page] == sorted((c.request_id for c in mine), reverse=True)[:2]


async def test_latest_many_maps_each_portfolio_to_its_newest(any_redis: aioredis.Redis) -> None:
    """One lookup for a page of portfolios; those without a request are left out."""
    await queue_command(any_redis, Action.PAUSE, "pf_a")
    newest = await queue_command(any_redis, Action.RESUME, "pf_a")
    other = await queue_command(any_redis, Action.PAUSE, "pf_b")
    store = RequestStore(any_redis)
    found = await store.latest_many(["pf_a", "pf_b", "pf_none"])
    assert {p: r.request_id for p, r in found.items()} == {
        "pf_a": newest.request_id,
        "pf_b": other.request_id,
    }
    assert await store.latest_many([]) == {}
