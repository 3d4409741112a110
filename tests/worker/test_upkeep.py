"""The worker's upkeep round: audit entries past AUDIT_RETENTION_DAYS go, the rest stay."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from relay.core.audit import AuditAction, AuditActor, new_entry
from relay.settings import load_settings
from relay.store import keys
from relay.store.audit import ENTRY_FIELD, AuditFilter, AuditStore
from relay.worker.registry import Tuning, WorkerContext, upkeep
from tests.fixtures.worker import eventually

DAY_MS = 24 * 3600 * 1000


async def test_upkeep_trims_the_audit_log_to_its_retention(any_redis: aioredis.Redis) -> None:
    """With AUDIT_RETENTION_DAYS=30 an entry of 31 days ago is dropped, one of 29 is kept."""
    actor = AuditActor.slack("T1", "U1", "alice")
    now_ms = int(time.time() * 1000)
    old = new_entry(AuditAction.COMMAND_RECEIVED, actor, detail="31 days ago")
    kept = new_entry(AuditAction.COMMAND_RECEIVED, actor, detail="29 days ago")
    await any_redis.xadd(keys.AUDIT, {ENTRY_FIELD: old.to_json()}, id=f"{now_ms - 31 * DAY_MS}-0")
    await any_redis.xadd(keys.AUDIT, {ENTRY_FIELD: kept.to_json()}, id=f"{now_ms - 29 * DAY_MS}-0")
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", audit_retention_days=30)
    ctx = WorkerContext(any_redis, settings, consumer="w1", tuning=Tuning(upkeep_every_s=3600))
    component = await upkeep(ctx)
    task = asyncio.create_task(component.run())

    async def trimmed() -> bool:
        return int(await any_redis.xlen(keys.AUDIT)) == 1

    try:
        await eventually(trimmed)
    finally:
        component.stop()
        await asyncio.wait_for(task, timeout=10)
        await ctx.close()  # upkeep also expires approvals, through the context's Slack client
    assert (await AuditStore(any_redis).page(AuditFilter(), limit=10))[0] == [kept]
