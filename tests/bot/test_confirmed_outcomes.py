"""From preview to outcome: a confirmed (and an approved) rebalance runs to its end.

The web app and a real worker (``relay.worker.process.serve``) on one Redis, the
simulator as Glider (its clock moved by the test), the fake Slack receiving the
outcome on the command's response_url.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from bot.confirm_messages import CONFIRM
from relay.core.poll_policy import PollPolicy
from relay.core.records import RequestState
from relay.settings import Settings
from relay.sim.config import ADMIN_KEY, PF_MAIN
from relay.slack.approvals import APPROVE
from relay.store.requests import RequestStore
from relay.worker.process import serve
from relay.worker.registry import Tuning
from tests.bot.test_approvals import APPROVER, REQUESTER, approvals_web
from tests.bot.test_confirm import answer, buttons, click
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import RESPONSE
from tests.fixtures.web import WebFactory, WebHarness
from tests.fixtures.worker import eventually


@asynccontextmanager
async def worker(web: WebHarness, sim: GliderSim) -> AsyncIterator[None]:
    # Cards off: these follow the outcome reply on the response_url (a job card is the
    # reply otherwise; tests/worker/test_cards.py follows cards).
    values = {
        **web.settings.model_dump(),
        "glider_api_url": sim.url,
        "glider_api_key": ADMIN_KEY,
        "relay_job_cards": False,
    }
    settings = Settings.model_validate(values)
    stop = asyncio.Event()
    tuning = Tuning(grace_s=0.5, poll=PollPolicy(first_s=0.05, min_s=0.05))
    task = asyncio.create_task(serve(settings, stop, tuning=tuning, redis=web.redis))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def completed(web: WebHarness, sim: GliderSim, request_id: str) -> Any:
    """Move Glider's clock on until the request is completed; its outcome reply."""

    async def done() -> bool:
        sim.clock.advance(5)
        record = await RequestStore(web.redis).get(request_id)
        return record is not None and record.state is RequestState.COMPLETED

    await eventually(done, within=20, step=0.05)
    (reply,) = await web.slack.wait_for(
        RESPONSE, where=lambda c: "completed" in str(c.payload.get("text")), within=20
    )
    return reply


async def test_preview_confirm_queued_outcome(
    web_factory: WebFactory, real_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    web = await web_factory(real_redis, glider_sim.client(), bot_confirm_rebalance=True)
    async with worker(web, glider_sim):
        ack = await web.command("/rebalance", PF_MAIN)
        replaced = await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"]))
        (command,) = await web.queued()
        assert f"`{command.request_id}`" in replaced.payload["text"]
        reply = await completed(web, glider_sim, command.request_id)
    assert PF_MAIN in reply.payload["text"]
    assert glider_sim.requests("POST", "/rebalance") == 1


async def test_an_approved_rebalance_runs_and_its_outcome_names_both_people(
    web_factory: WebFactory, real_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    web = await approvals_web(web_factory, real_redis, glider_sim, tmp_path)
    async with worker(web, glider_sim):
        ack = await web.command("/rebalance", PF_MAIN, **REQUESTER)
        await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"], **REQUESTER))
        (posted,) = await web.slack.wait_for("chat.postMessage")
        await click(web, APPROVE, buttons(posted.payload)[APPROVE]["value"], **APPROVER)
        (command,) = await web.queued()
        reply = await completed(web, glider_sim, command.request_id)
    context = str(reply.payload["blocks"])
    assert "requested by <@UOP1>" in context
    assert "approved by <@UAP2>" in context
    assert glider_sim.requests("POST", "/rebalance") == 1
