"""The App Home tab and /rebalance list over HTTP: simulator, fake Slack, private Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis

from bot.home_messages import NEXT, PREVIOUS
from bot.web import serve
from relay.core.commands import Action, QueuedCommand, Requester
from relay.settings import load_settings
from relay.sim.config import ADMIN_KEY, PF_MAIN, SimConfig, SimPortfolio
from relay.store import keys
from relay.store.confirmations import approval_fields
from tests.bot.test_approvals import approvals_web, confirmed
from tests.fixtures.blockkit import view_errors
from tests.fixtures.glider import GliderSim, SimFactory
from tests.fixtures.glider_script import NAIVE_SCHEDULE, NOON_TOKEN, ServerFactory, scripted_glider
from tests.fixtures.slack import (
    BOT_TOKEN,
    SOCKET,
    FakeSlack,
    SlackCall,
    app_home_opened,
    signed_event,
    signed_home_action,
)
from tests.fixtures.web import WebFactory, WebHarness

PUBLISH = "views.publish"


def _many(count: int) -> tuple[SimPortfolio, ...]:
    return tuple(
        SimPortfolio(id=f"pf_{i:04d}", tenant="acme", name=f"Fund {i} <!channel> & co")
        for i in range(count)
    )


def _view(call: SlackCall) -> dict[str, Any]:
    view = call.payload["view"]
    parsed: dict[str, Any] = json.loads(view) if isinstance(view, str) else view
    return parsed


async def _open(web: WebHarness, user: str = "U1", count: int = 1) -> dict[str, Any]:
    response = await web.post(signed_event(app_home_opened(user)))
    assert response.status == 200
    (call, *_) = (await web.slack.wait_for(PUBLISH, count, include_failed=True))[count - 1 :]
    assert call.ok, call.error
    assert call.payload["user_id"] == user
    return _view(call)


def _text(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def _buttons(view: dict[str, Any]) -> dict[str, str]:
    return {
        e["action_id"]: e["value"]
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }


async def test_home_with_no_portfolio(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """0 portfolios: the tab is published and says Glider lists none; no paging buttons."""
    sim = await sim_factory(portfolios=())
    async with sim.client() as glider:
        web = await web_factory(any_redis, glider)
        view = await _open(web)
    text = _text(view)
    assert "Glider lists no portfolio you may see." in text
    assert "Pending approvals:* none" in text
    assert _buttons(view) == {}


async def test_home_shows_a_portfolio_with_its_last_outcome(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """1 portfolio: schedule, next due, the tracked request and the user's latest command."""
    sim = await sim_factory(portfolios=SimConfig.default().portfolios[:1])
    async with sim.client() as glider:
        web = await web_factory(any_redis, glider)
        await web.command("/rebalance", PF_MAIN)
        view = await _open(web)
    text = _text(view)
    assert f"*Alice Conservative Yield* `{PF_MAIN}`" in text
    assert "Schedule: *active* (daily)" in text
    assert "Next due: <!date^" in text
    assert "Last tracked: rebalance *queued*" in text
    assert f"rebalance `{PF_MAIN}`: *queued*" in text  # the user's latest commands
    assert "Portfolios 1-1 of 1" in text


async def test_home_pages_500_portfolios_within_slack_limits(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """500 portfolios: 20 a page, valid view, "N more", and Next/Previous republish."""
    sim = await sim_factory(portfolios=_many(500))
    async with sim.client() as glider:
        web = await web_factory(any_redis, glider)
        first = await _open(web)
        assert view_errors(first) == []
        assert len(first["blocks"]) <= 100
        assert "Portfolios 1-20 of 500 · 480 more not shown" in _text(first)
        assert "&lt;!channel&gt; &amp; co" in _text(first)
        assert "<!channel>" not in _text(first)
        assert _buttons(first) == {NEXT: "20"}
        walked = sim.requests("GET", "/v2/portfolios")
        assert walked == 3  # 200 + 200 + 100

        response = await web.post(signed_home_action(NEXT, "20"))
        assert response.status == 200
        calls = await web.slack.wait_for(PUBLISH, 2)
        second = _view(calls[1])
        assert "Portfolios 21-40 of 500 · 480 more not shown" in _text(second)
        assert _buttons(second) == {PREVIOUS: "0", NEXT: "40"}

        await web.post(signed_home_action(NEXT, "480"))
        last = _view((await web.slack.wait_for(PUBLISH, 3))[2])
        assert "Portfolios 481-500 of 500" in _text(last)
        assert _buttons(last) == {PREVIOUS: "460"}
        # Both clicks were served from the cache: Glider was walked once.
        assert sim.requests("GET", "/v2/portfolios") == walked


async def test_a_forged_page_value_publishes_nothing(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """A page button whose value is not an offset changes nothing; a good one still works."""
    sim = await sim_factory(portfolios=_many(30))
    async with sim.client() as glider:
        web = await web_factory(fake_redis, glider)
        for bad in ("-1", "abc", "99999999", "1e3"):
            assert (await web.post(signed_home_action(NEXT, bad))).status == 200
        await web.post(signed_home_action(NEXT, "20"))
        (call,) = await web.slack.wait_for(PUBLISH, include_failed=True)
    assert "Portfolios 21-30 of 30" in _text(_view(call))


async def test_glider_failing_still_publishes_a_view_that_says_so(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """Glider answering 500: a view that says the list is unavailable, never nothing."""
    sim = await sim_factory()
    sim.chaos.fail_next(10, status=500)
    async with sim.client(max_retries=0) as glider:
        web = await web_factory(fake_redis, glider)
        view = await _open(web)
    text = _text(view)
    assert ":warning: Glider details are unavailable right now" in text
    assert "Your latest commands:* none" in text


async def test_home_of_a_user_not_allowed_says_so(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """A user outside BOT_ALLOWED_USERS sees a refusal, no portfolio."""
    sim = await sim_factory()
    async with sim.client() as glider:
        web = await web_factory(fake_redis, glider)
        view = await _open(web, user="U666")
    assert "You may not read any portfolio" in _text(view)
    assert PF_MAIN not in _text(view)


async def test_rebalance_list_pages_in_the_channel(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """/rebalance list: ephemeral, 10 a page, the count not shown, and page 2 on request."""
    sim = await sim_factory(portfolios=_many(25))
    async with sim.client() as glider:
        web = await web_factory(any_redis, glider)
        first = await web.command("/rebalance", "list")
        third = await web.command("/rebalance", "list 3")
        refused = await web.command("/rebalance", "list", user_id="U666")
        bad = await web.command("/rebalance", "list 0")
    assert first["response_type"] == "ephemeral"
    assert "Portfolios 1-10 of 25 · 15 more not shown" in str(first["blocks"])
    assert "`/rebalance list 2`" in str(first["blocks"])
    assert "Portfolios 21-25 of 25 · 20 more not shown" in str(third["blocks"])
    assert "You may not read any portfolio" in refused["text"]
    assert "is not a page number" in bad["text"]
    assert len(await web.queued()) == 0


async def test_the_event_is_acked_before_glider_answers(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """The event's HTTP answer comes first; Glider's list and views.publish follow it."""
    sim = await sim_factory(latency_ms=300)
    async with sim.client() as glider:
        web = await web_factory(fake_redis, glider)
        response = await web.post(signed_event(app_home_opened("U1")))
        assert response.status == 200
        assert web.slack.calls_to(PUBLISH, include_failed=True) == []
        (call,) = await web.slack.wait_for(PUBLISH)
    assert "Portfolios 1-4 of 4" in _text(_view(call))


async def test_the_messages_tab_and_url_verification(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """Opening the Messages tab publishes nothing; Slack's url_verification is answered."""
    sim = await sim_factory()
    async with sim.client() as glider:
        web = await web_factory(fake_redis, glider)
        response = await web.post(signed_event(app_home_opened("U1", tab="messages")))
        assert response.status == 200
        challenge = {"token": "t", "challenge": "abc123", "type": "url_verification"}
        answer = await web.post(signed_event(challenge))
        assert answer.status == 200
        assert (await answer.json())["challenge"] == "abc123"
        await _open(web)  # a Home open after them: the first and only publish
    assert len(web.slack.calls_to(PUBLISH, include_failed=True)) == 1


async def test_home_over_socket_mode(
    redis_url: str, real_redis: aioredis.Redis, fake_slack: FakeSlack, sim_factory: SimFactory
) -> None:
    """Over Socket Mode the same event (an ``events_api`` envelope) publishes the Home tab."""
    sim = await sim_factory()
    settings = load_settings(
        redis_url=redis_url,
        slack_app_token="xapp-1-test-token",
        slack_bot_token=BOT_TOKEN,
        slack_api_url=fake_slack.api_url,
        glider_api_url=sim.url,
        glider_api_key=ADMIN_KEY,
        bot_allowed_users="U1",
        port=0,
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, host="127.0.0.1", stop=stop))
    try:
        envelope_id = await fake_slack.send_envelope("events_api", app_home_opened("U1"), within=10)
        await fake_slack.wait_for(
            SOCKET, where=lambda call: call.payload.get("envelope_id") == envelope_id
        )
        (call,) = await fake_slack.wait_for(PUBLISH, within=10)
        assert f"`{PF_MAIN}`" in _text(_view(call))
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_home_shows_pending_approvals_and_only_readable_portfolios(
    web_factory: WebFactory, any_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """Under a policy file: the requester sees their request awaiting approval, the approver
    sees it to decide, and each sees only the portfolios the policy lets them read."""
    web = await approvals_web(web_factory, any_redis, glider_sim, tmp_path)
    await confirmed(web)
    asker = _text(await _open(web, user="UOP1"))
    assert f"Rebalance of `{PF_MAIN}` (yours, awaiting a second person)" in asker
    assert "Portfolios 1-4 of 4" in asker
    approver = _text(await _open(web, user="UAP2", count=2))
    assert f"Rebalance of `{PF_MAIN}` (from `olive`)" in approver
    assert "Portfolios 1-1 of 1" in approver  # the approvers' role reads PF_MAIN only
    stranger = _text(await _open(web, user="UXX9", count=3))
    assert "You may not read any portfolio" in stranger


async def _seed_approvals(redis: aioredis.Redis, count: int) -> None:
    """``count`` pending approvals of PF_MAIN from someone else, due before any made now."""
    for n in range(count):
        command = QueuedCommand(
            request_id=f"req_seeded{n:04d}",
            action=Action.REBALANCE,
            portfolio_id=PF_MAIN,
            requested_by=Requester(user_id="UOTHER", user_name="other"),
        )
        token, due = f"tok_seeded{n:04d}", 1_000_000 + n
        await redis.hset(keys.approval(token), mapping=approval_fields(command, "facts", due))  # type: ignore[arg-type]
        await redis.zadd(keys.APPROVALS_DUE, {token: due})


async def test_home_finds_approvals_past_the_first_page_and_says_when_it_stopped(
    web_factory: WebFactory, fake_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Any
) -> None:
    """60 other approvals are due sooner: the approver's count still takes in every one and
    the requester's own, which comes last; past 500, the tab says it stopped reading."""
    web = await approvals_web(web_factory, fake_redis, glider_sim, tmp_path)
    await _seed_approvals(fake_redis, 60)
    await confirmed(web)
    approver = _text(await _open(web, user="UAP2"))
    assert "… and 56 more" in approver  # 61 pending, 5 shown
    assert "perhaps more" not in approver
    asker = _text(await _open(web, user="UOP1", count=2))
    assert f"Rebalance of `{PF_MAIN}` (yours, awaiting a second person)" in asker
    await _seed_approvals(fake_redis, 600)  # the same 60 again, and 540 more
    approver = _text(await _open(web, user="UAP2", count=3))
    assert "… and 495 more" in approver  # the 500 soonest read, 5 shown
    assert "… and perhaps more: only the soonest due were read" in approver
    asker = _text(await _open(web, user="UOP1", count=4))
    assert "*Pending approvals:* none" not in asker  # its own is past the walk: not "none"
    assert "perhaps more" in asker


async def test_glider_timing_out_still_publishes_a_view_that_says_so(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """Glider slower than the client's timeout: the view says so, and /rebalance list too."""
    sim = await sim_factory(latency_ms=500)
    async with sim.client(timeout=0.05, max_retries=0) as glider:
        web = await web_factory(fake_redis, glider)
        view = _text(await _open(web))
        listed = await web.command("/rebalance", "list")
    assert ":warning: Glider" in view
    assert "Portfolios 1-" not in view
    assert ":warning: Glider" in str(listed["blocks"])


async def test_times_without_an_offset_keep_the_list_and_the_home_tab(
    web_factory: WebFactory, fake_redis: aioredis.Redis, aiohttp_server: ServerFactory
) -> None:
    """Glider's ``nextDueAt`` without ``Z``: /rebalance list and the Home tab list it, as UTC."""
    glider = await scripted_glider(aiohttp_server, "pf_naive")
    glider.schedule(**NAIVE_SCHEDULE)
    async with glider.client("gldr_sk_home_naive") as client:
        web = await web_factory(fake_redis, client)
        listed = await web.command("/rebalance", "list")
        view = await _open(web)  # from the list the command cached
    noon = f"Next due: {NOON_TOKEN}"
    assert "`pf_naive`" in str(listed["blocks"])
    assert noon in str(listed["blocks"])
    assert noon in _text(view)
    assert "could not be built" not in _text(view)
