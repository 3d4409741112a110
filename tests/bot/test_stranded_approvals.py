"""An approved command whose web process stopped between the decision and its enqueue is
queued by the worker (relay/slack/approvals.py queue_stranded): nothing approved is lost."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from relay.core.commands import Requester
from relay.slack.approvals import APPROVE, STRANDED_AFTER_MS, apply_decision, queue_stranded
from relay.store import keys
from relay.store.confirmations import load_approval
from tests.bot.test_approvals import APPROVER, approvals_web
from tests.bot.test_confirm import answer, click
from tests.bot.test_late_clicks import awaiting_approval
from tests.fixtures.glider import GliderSim
from tests.fixtures.web import WebFactory

LATER_MS = STRANDED_AFTER_MS + 1_000


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_an_approval_left_behind_is_queued_by_the_worker_once(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """Decided (the crash comes before the enqueue): not picked up while its web process
    could still answer, then queued once, approved by its approver, and forgotten."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    _, token = await awaiting_approval(web)
    approval = await load_approval(any_redis, token)
    assert approval is not None
    approver = Requester(user_id=APPROVER["user_id"], user_name=APPROVER["user_name"])
    assert (await apply_decision(any_redis, approval, "approved", approver))[0] == "done"
    assert await queue_stranded(any_redis) == 0  # just decided: its process may yet queue it
    assert await web.queued() == []
    assert await queue_stranded(any_redis, now_ms=_now_ms() + LATER_MS) == 1
    (queued,) = await web.queued()
    assert queued.request_id == approval.command.request_id
    assert queued.approved_by is not None
    assert queued.approved_by.user_id == APPROVER["user_id"]
    assert await any_redis.zcard(keys.APPROVALS_TO_QUEUE) == 0
    assert await queue_stranded(any_redis, now_ms=_now_ms() + LATER_MS) == 0
    assert len(await web.queued()) == 1


async def test_an_approval_its_click_queued_leaves_nothing_behind(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """The deciding click queues the command and clears its note: the worker queues nothing."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    _, token = await awaiting_approval(web)
    await answer(web, await click(web, APPROVE, token, **APPROVER))
    assert len(await web.queued()) == 1
    assert await any_redis.zcard(keys.APPROVALS_TO_QUEUE) == 0
    assert await queue_stranded(any_redis, now_ms=_now_ms() + LATER_MS) == 0
    assert len(await web.queued()) == 1
