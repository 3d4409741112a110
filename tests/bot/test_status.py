"""/rebalance status over HTTP, against the Glider simulator and the fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relay.glider.client import GliderClient
from relay.sim.config import PF_MAIN, PF_ULID, SimConfig, SimPortfolio
from relay.store.ratelimit import SharedRateLimiter
from tests.fixtures.glider import GliderSim, SimFactory, free_port
from tests.fixtures.glider_script import (
    NAIVE_SCHEDULE,
    NOON_TOKEN,
    PORTFOLIO,
    ServerFactory,
    scripted_glider,
)
from tests.fixtures.slack import RESPONSE
from tests.fixtures.web import WebFactory


@pytest.fixture
async def sim_glider(glider_sim: GliderSim) -> AsyncIterator[GliderClient]:
    """A client of the default simulator, as the web process would hold one."""
    async with glider_sim.client() as client:
        yield client


async def test_status_shows_schedule_and_latest_request(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_glider: GliderClient
) -> None:
    """Status shows Glider's schedule, both times (relative and absolute) and our request."""
    web = await web_factory(any_redis, sim_glider)
    await web.command("/rebalance", PF_MAIN)
    (queued,) = await web.queued()
    ack = await web.command("/rebalance", f"status {PF_MAIN}")
    text = str(ack["blocks"])
    assert ack["response_type"] == "ephemeral"
    assert "Schedule: *active* (daily)" in text
    assert "Last rebalance: " in text
    assert "Next due: <!date^" in text
    assert " UTC> (" in text  # absolute, then relative
    assert f"Latest tracked request: `{queued.request_id}` (rebalance, *queued*)" in text
    assert len(await web.queued()) == 1


async def test_status_of_paused_portfolio(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_glider: GliderClient
) -> None:
    """A paused schedule reads as paused; no tracked request reads as none."""
    web = await web_factory(any_redis, sim_glider)
    ack = await web.command("/rebalance", f"status {PF_ULID}")
    assert "Schedule: *paused*" in str(ack["blocks"])
    assert "Latest tracked request: none" in str(ack["blocks"])


async def test_status_of_unknown_portfolio_says_glider_does_not_know_it(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_glider: GliderClient
) -> None:
    """Glider's 404 becomes a plain note, not an error."""
    web = await web_factory(any_redis, sim_glider)
    ack = await web.command("/rebalance", "status pf_nope")
    assert "Glider does not know portfolio pf_nope" in str(ack["blocks"])


async def test_status_without_glider_key_still_shows_tracked_request(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Without GLIDER_API_KEY the status says so and shows the tracked request."""
    web = await web_factory(any_redis, None)
    await web.command("/pause", "pf_1 quiet hours")
    (queued,) = await web.queued()
    ack = await web.command("/rebalance", "status pf_1")
    text = str(ack["blocks"])
    assert "GLIDER_API_KEY is not set on the web process" in text
    assert f"`{queued.request_id}` (pause, *queued*)" in text


async def test_status_requires_permission(
    web_factory: WebFactory, any_redis: aioredis.Redis, sim_glider: GliderClient
) -> None:
    """A user not allowed to act cannot read status either."""
    web = await web_factory(any_redis, sim_glider)
    ack = await web.command("/rebalance", f"status {PF_MAIN}", user_id="U666")
    assert "not allowed" in ack["text"]


async def test_slow_glider_acks_then_answers_through_response_url(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """When Glider is slower than the patience, the ack says so and the status follows late."""
    sim = await sim_factory(latency_ms=300)
    async with sim.client() as glider:
        web = await web_factory(fake_redis, glider, status_patience=0.01)
        web.slack.fail_next(1, status=429, retry_after=0, method=RESPONSE)
        ack = await web.command(
            "/rebalance", f"status {PF_MAIN}", response_url=web.slack.response_url("late")
        )
        assert "Looking up" in ack["text"]
        calls = await web.slack.wait_for(RESPONSE, include_failed=True, count=2)
    assert [c.status for c in calls] == [429, 200]
    assert calls[-1].path == "/response/late"
    assert "Schedule: *active* (daily)" in str(calls[-1].payload["blocks"])
    assert calls[-1].payload["response_type"] == "ephemeral"


async def test_glider_text_is_escaped_in_status(
    web_factory: WebFactory, fake_redis: aioredis.Redis, sim_factory: SimFactory
) -> None:
    """A portfolio name with a mention or link from Glider is shown escaped."""
    hostile = SimPortfolio(id="pf_evil", tenant="acme", name="<!channel> <http://x|y> & co")
    sim = await sim_factory(portfolios=(*SimConfig.default().portfolios, hostile))
    async with sim.client() as glider:
        web = await web_factory(fake_redis, glider)
        ack = await web.command("/rebalance", "status pf_evil")
    text = str(ack["blocks"])
    assert "*&lt;!channel&gt; &lt;http://x|y&gt; &amp; co*" in text
    assert "<!channel>" not in text
    assert "<http://x|y>" not in text


async def test_status_survives_the_rate_budget_store_being_down(
    any_redis: aioredis.Redis, web_factory: WebFactory, glider_sim: GliderSim
) -> None:
    """Redis failing under the shared Glider budget gives a note, not a failed command."""
    dead_store = aioredis.Redis(port=free_port(), socket_connect_timeout=0.2)
    limiter = SharedRateLimiter(dead_store, 10)
    async with glider_sim.client(rate_limiter=limiter) as glider:
        web = await web_factory(any_redis, glider)
        ack = await web.command("/rebalance", f"status {PF_MAIN}")
        replies = [ack] + [c.payload for c in await web.slack.wait_for(RESPONSE, 1, within=15)]
    await dead_store.aclose()
    assert "the relay's store did not answer" in str(replies)


async def test_status_reads_a_time_without_an_offset_as_utc(
    web_factory: WebFactory, fake_redis: aioredis.Redis, aiohttp_server: ServerFactory
) -> None:
    """Glider's ``nextDueAt`` without ``Z``: the status answers and shows it as UTC."""
    glider = await scripted_glider(aiohttp_server, "pf_naive")
    glider.schedule(**NAIVE_SCHEDULE)
    async with glider.client("gldr_sk_status_naive") as client:
        web = await web_factory(fake_redis, client)
        ack = await web.command("/rebalance", "status pf_naive")
    assert f"Next due: {NOON_TOKEN}" in str(ack["blocks"])


async def test_status_never_shows_any_part_of_a_key_a_proxy_echoed(
    web_factory: WebFactory, fake_redis: aioredis.Redis, aiohttp_server: ServerFactory
) -> None:
    """A proxy page echoing the key across the 200-character cut: the reply keeps none of it."""
    key = "gldr_sk_SECRETKEY1234567890abcdef"
    page = "<html>400: rejected by edge proxy; " + "." * 136 + f" x-api-key: {key}</html>"
    glider = await scripted_glider(aiohttp_server, "pf_proxy")
    glider.fail(PORTFOLIO, 400, page.encode())
    async with glider.client(key) as client:
        web = await web_factory(fake_redis, client)
        ack = await web.command("/rebalance", "status pf_proxy")
    text = str(ack)
    assert "Glider details are unavailable right now" in text
    assert "SECRETKEY" not in text
    assert "gldr_sk_" not in text
