"""The audit stream: append, newest-first pages with a cursor, filters, retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from relay.core.audit import ADMIN, AuditAction, AuditActor, AuditEntry, new_entry
from relay.store import keys
from relay.store.audit import CURSOR_RE, ENTRY_FIELD, AuditFilter, AuditStore

# `at` within minutes of the append, as every writer's is (since/until bound the walk by id).
ALICE = AuditActor.slack("T1", "U1", "alice")
BOB = AuditActor.slack("T1", "U2", "bob")


async def _fill(store: AuditStore) -> list[AuditEntry]:
    """Six entries, oldest first, a minute apart, over two portfolios and two users."""
    specs = [
        (AuditAction.COMMAND_RECEIVED, ALICE, "pf_a"),
        (AuditAction.COMMAND_REFUSED, BOB, "pf_b"),
        (AuditAction.OUTCOME_RECORDED, AuditActor(source="relay"), "pf_a"),
        (AuditAction.SUBSCRIPTION_CREATED, ADMIN, None),
        (AuditAction.SUBSCRIPTION_DELETED, ADMIN, None),
        (AuditAction.COMMAND_RECEIVED, BOB, "pf_a"),
    ]
    # Times around now (read here, not at import: a stream range is by append time too).
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    entries = []
    for minute, (action, actor, portfolio) in enumerate(specs):
        entry = new_entry(action, actor, portfolio_id=portfolio, at=t0 + timedelta(minutes=minute))
        await store.append(entry)
        entries.append(entry)
    return entries


async def _all_pages(
    store: AuditStore, where: AuditFilter, limit: int, budget: int = 5000
) -> list[list[AuditEntry]]:
    pages, cursor = [], None
    while True:
        page, cursor = await store.page(where, cursor=cursor, limit=limit, budget=budget)
        pages.append(page)
        if cursor is None:
            return pages
        assert CURSOR_RE.fullmatch(cursor)


async def test_pages_are_newest_first_and_the_cursor_walks_them_all(
    any_redis: aioredis.Redis,
) -> None:
    """limit 4 then the rest; the last page's cursor is null; no entry twice, none lost."""
    store = AuditStore(any_redis)
    entries = await _fill(store)
    first, cursor = await store.page(AuditFilter(), limit=4)
    assert first == entries[::-1][:4]
    assert cursor is not None
    rest, end = await store.page(AuditFilter(), cursor=cursor, limit=4)
    assert (rest, end) == (entries[::-1][4:], None)
    exact, none_left = await store.page(AuditFilter(), limit=6)
    assert (exact, none_left) == (entries[::-1], None)
    assert await store.page(AuditFilter(), limit=1, cursor="0-1") == ([], None)
    ancient = datetime(222, 9, 2, tzinfo=UTC)  # before any stream id: nothing, not an error
    assert await store.page(AuditFilter(since=ancient, until=ancient), limit=1) == ([], None)


async def test_filters_combine_and_pages_keep_to_them(any_redis: aioredis.Redis) -> None:
    """portfolio, user (id or name), action (exact or its subject), since/until by `at`."""
    store = AuditStore(any_redis)
    e = await _fill(store)
    t0 = e[0].at
    cases = {
        AuditFilter(portfolio="pf_a"): [e[5], e[2], e[0]],
        AuditFilter(user="U2"): [e[5], e[1]],
        AuditFilter(user="alice"): [e[0]],
        AuditFilter(action="command.received"): [e[5], e[0]],
        AuditFilter(action="subscription"): [e[4], e[3]],
        AuditFilter(action="subscription.dele"): [],  # a subject is a whole word
        AuditFilter(since=t0 + timedelta(minutes=2), until=t0 + timedelta(minutes=4)): [
            e[4],
            e[3],
            e[2],
        ],
        AuditFilter(portfolio="pf_a", user="U2", action="command"): [e[5]],
        AuditFilter(portfolio="pf_missing"): [],
    }
    for where, expected in cases.items():
        pages = await _all_pages(store, where, limit=1)
        assert [entry for page in pages for entry in page] == expected, where
        assert all(len(page) <= 1 for page in pages)


async def test_a_rare_filter_stops_at_the_budget_and_goes_on_from_there(
    any_redis: aioredis.Redis,
) -> None:
    """With a budget of 2 entries per call, pages come back short but the cursor finds all."""
    store = AuditStore(any_redis)
    e = await _fill(store)
    first, cursor = await store.page(AuditFilter(portfolio="pf_a"), limit=10, budget=2)
    assert first == [e[5]]
    assert cursor is not None
    pages = await _all_pages(store, AuditFilter(portfolio="pf_a"), limit=10, budget=2)
    assert [entry for page in pages for entry in page] == [e[5], e[2], e[0]]


async def test_retention_drops_only_entries_older_than_the_horizon(
    any_redis: aioredis.Redis,
) -> None:
    """XTRIM MINID: entries appended over N days ago go; younger ones and new appends stay."""
    store = AuditStore(any_redis)
    now_ms = int(time.time() * 1000)
    day = 24 * 3600 * 1000
    old = new_entry(AuditAction.COMMAND_RECEIVED, ALICE, detail="old")
    young = new_entry(AuditAction.COMMAND_RECEIVED, ALICE, detail="young")
    await any_redis.xadd(keys.AUDIT, {ENTRY_FIELD: old.to_json()}, id=f"{now_ms - 11 * day}-0")
    await any_redis.xadd(keys.AUDIT, {ENTRY_FIELD: young.to_json()}, id=f"{now_ms - 9 * day}-0")
    fresh = new_entry(AuditAction.COMMAND_REFUSED, BOB)
    await store.append(fresh)
    assert await store.trim(now_ms=now_ms, retention_days=10) == 1
    assert (await store.page(AuditFilter(), limit=10))[0] == [fresh, young]
    assert await store.trim(now_ms=now_ms, retention_days=10) == 0


async def test_an_unreadable_entry_is_skipped_not_served(any_redis: aioredis.Redis) -> None:
    """A stream entry that is not an AuditEntry never breaks a page; an entry in a single
    field of another name is still read."""
    store = AuditStore(any_redis)
    good = new_entry(AuditAction.COMMAND_RECEIVED, ALICE)
    await store.append(good)
    await any_redis.xadd(keys.AUDIT, {ENTRY_FIELD: '{"id": "aud_x"}'})
    await any_redis.xadd(keys.AUDIT, {"other": "field"})
    await any_redis.xadd(keys.AUDIT, {"a": "1", "b": "2"})
    elsewhere = new_entry(AuditAction.APPROVAL_APPROVED, BOB)  # one field, another name
    await any_redis.xadd(keys.AUDIT, {"json": elsewhere.to_json()})
    assert await store.page(AuditFilter(), limit=10) == ([elsewhere, good], None)
