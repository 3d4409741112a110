"""Late and repeated clicks over HTTP (docs/contract.md §8-9): only the click that decides
changes a message or tells anyone else; any later click is answered to its clicker alone,
ephemerally, and spends none of the requester's response_url uses."""

from __future__ import annotations

import re
from typing import Any

import redis.asyncio as aioredis

from bot.confirm_messages import CANCEL, CONFIRM
from bot.web import BACKGROUND
from relay.core.commands import Requester
from relay.core.records import RequestState
from relay.sim.config import PF_MAIN, SimConfig
from relay.slack.approvals import APPROVE, REJECT, apply_decision
from relay.store import keys
from relay.store.confirmations import load_approval
from tests.bot.test_approvals import APPROVER, REQUESTER, approvals_web
from tests.bot.test_confirm import answer, buttons, click, confirming_web
from tests.fixtures.glider import GliderSim, SimFactory
from tests.fixtures.slack import RESPONSE, SlackCall
from tests.fixtures.web import WebFactory, WebHarness
from tests.fixtures.worker import eventually

_BROKEN_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def ephemeral_only(call: SlackCall) -> bool:
    return call.payload.get("response_type") == "ephemeral" and not call.payload.get(
        "replace_original"
    )


def posts_to(web: WebHarness, url: str) -> list[SlackCall]:
    path = url.removeprefix(web.slack.base_url)
    return [c for c in web.slack.calls_to(RESPONSE) if c.path == path]


async def awaiting_approval(web: WebHarness) -> tuple[str, str]:
    """A confirmed /rebalance that needs approval: the requester's response_url, and the
    approval request's token (its buttons' value)."""
    own_url = web.slack.response_url()
    ack = await web.command("/rebalance", PF_MAIN, response_url=own_url, **REQUESTER)
    await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"], **REQUESTER))
    (posted,) = await web.slack.wait_for("chat.postMessage")
    return own_url, buttons(posted.payload)[APPROVE]["value"]


async def test_clicks_on_a_decided_approval_tell_only_the_clicker(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """After the approval, a second approver's Reject and a stranger's Approve each hear,
    ephemerally, who approved; the requester hears "Queued" once, nothing is queued again."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    own_url, token = await awaiting_approval(web)
    await answer(web, await click(web, APPROVE, token, **APPROVER))
    path = own_url.removeprefix(web.slack.base_url)
    (queued,) = await web.slack.wait_for(RESPONSE, where=lambda c: c.path == path)
    assert "Queued" in queued.payload["text"]
    late = [
        await answer(web, await click(web, REJECT, token, user_id="UAP3", user_name="bea")),
        await answer(web, await click(web, APPROVE, token, user_id="U0STRANGER")),
    ]
    for call in late:
        assert ephemeral_only(call), call.payload
        assert "already approved by <@UAP2>" in call.payload["text"]
    await eventually(lambda: len(web.client.app[BACKGROUND]) == 0)  # late posts sent
    assert len(posts_to(web, own_url)) == 1
    assert len(await web.queued()) == 1
    assert len(web.slack.calls_to("chat.update")) == 1


async def test_a_repeated_confirm_or_cancel_answers_the_clicker_and_replaces_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    """Only the first click replaces the preview; a repeat (the buttons were still on
    screen) must not overwrite what the preview has become since."""
    web = await confirming_web(web_factory, any_redis, glider_sim)
    token = buttons(await web.command("/rebalance", PF_MAIN))[CONFIRM]["value"]
    first = await answer(web, await click(web, CONFIRM, token))
    assert first.payload["replace_original"] is True
    (command,) = await web.queued()
    again = await answer(web, await click(web, CONFIRM, token))
    assert ephemeral_only(again), again.payload
    assert command.request_id in again.payload["text"]
    cancel = await answer(web, await click(web, CANCEL, token))
    assert ephemeral_only(cancel), cancel.payload
    assert len(await web.queued()) == 1

    cancelled = buttons(await web.command("/rebalance", PF_MAIN))[CANCEL]["value"]
    assert (await answer(web, await click(web, CANCEL, cancelled))).payload["replace_original"]
    for action in (CANCEL, CONFIRM):
        late = await answer(web, await click(web, action, cancelled))
        assert ephemeral_only(late), late.payload
        assert "cancelled" in late.payload["text"]


async def test_a_late_job_retry_after_someone_retried_starts_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim
) -> None:
    """The failed card keeps its button: once a newer rebalance of the portfolio was
    accepted, a click on it names that request and queues nothing."""
    web = await web_factory(any_redis, glider_sim.client())
    await web.command("/rebalance", PF_MAIN)
    (failed,) = await web.queued()
    await any_redis.hset(keys.request(failed.request_id), "state", RequestState.FAILED.value)
    await any_redis.delete(keys.portfolio_inflight(PF_MAIN))
    await answer(web, await click(web, "job.retry", failed.request_id))

    async def retried() -> bool:
        return len(await web.queued()) == 2

    await eventually(retried)
    retry = (await web.queued())[1]
    await any_redis.hset(keys.request(retry.request_id), "state", RequestState.COMPLETED.value)
    await any_redis.delete(keys.portfolio_inflight(PF_MAIN))
    late = await answer(web, await click(web, "job.retry", failed.request_id, user_id="U2"))
    assert ephemeral_only(late), late.payload
    assert retry.request_id in late.payload["text"]
    assert "Nothing was started again" in late.payload["text"]
    assert len(await web.queued()) == 2


async def test_approval_facts_are_cut_between_whole_lines(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_factory: SimFactory, tmp_path: Any
) -> None:
    """Facts past 2000 characters once escaped (names of ``&``) are cut after a whole line
    with an ``…`` line: never inside ``&amp;``, a ``*bold*`` span or a ``<!date>`` token."""
    portfolios = tuple(
        p.model_copy(update={"name": "&" * 200, "strategy_name": "&" * 200})
        if p.id == PF_MAIN
        else p
        for p in SimConfig.default().portfolios
    )
    sim = await sim_factory(portfolios=portfolios)
    web = await approvals_web(web_factory, any_redis, sim, tmp_path)
    ack = await web.command("/rebalance", PF_MAIN, **REQUESTER)
    preview_lines = next(
        b["text"]["text"] for b in ack["blocks"][1:] if b["type"] == "section"
    ).split("\n")
    assert len("\n".join(preview_lines)) > 2000
    await answer(web, await click(web, CONFIRM, buttons(ack)[CONFIRM]["value"], **REQUESTER))
    (posted,) = await web.slack.wait_for("chat.postMessage")
    shown = posted.payload["blocks"][1]["text"]["text"].split("\n")
    assert not _BROKEN_ENTITY.search("\n".join(shown))
    assert shown[-1] == "…"
    assert shown[:-1] == preview_lines[: len(shown) - 1]


async def test_an_approval_whose_enqueue_never_landed_is_queued_by_the_next_click(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """The deciding process died between the decision and its enqueue: the next click on the
    request, by anyone, queues the command (once) and tells the requester; a click after
    that changes nothing more."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    own_url, token = await awaiting_approval(web)
    approval = await load_approval(any_redis, token)
    assert approval is not None
    approver = Requester(user_id=APPROVER["user_id"], user_name=APPROVER["user_name"])
    outcome, _, _ = await apply_decision(any_redis, approval, "approved", approver)
    assert outcome == "done"
    assert await web.queued() == []  # decided, never queued: the crash window
    for _ in range(2):
        late = await answer(web, await click(web, APPROVE, token, user_id="U0STRANGER"))
        assert ephemeral_only(late), late.payload
    await eventually(lambda: len(web.client.app[BACKGROUND]) == 0)
    (queued,) = await web.queued()
    assert queued.approved_by is not None
    assert queued.approved_by.user_id == APPROVER["user_id"]
    [told] = posts_to(web, own_url)
    assert "Queued" in told.payload["text"]
