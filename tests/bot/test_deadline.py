"""One deadline per Slack request (bot/deadline.py), over HTTP: a slow user-group lookup
and a slow Glider or Redis share Slack's 3 s instead of adding their budgets up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.deadline import ACK_BUDGET_S, Deadline
from relay.glider.client import GliderClient
from relay.sim.config import PF_MAIN
from relay.slack.usergroups import LOOKUP_BUDGET_S
from tests.fixtures.glider import SimFactory
from tests.fixtures.redis import StalledRedis
from tests.fixtures.slack import RESPONSE
from tests.fixtures.web import WebFactory, WebHarness

SLACK_GIVES_UP_S = 3.0
GROUP = "S0OPSTEAM"
POLICY = f"""
[roles]
operators = ["UOP1", "{GROUP}"]

[[rules]]
portfolios = ["*"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
"""


@pytest.fixture
async def silent_slack() -> AsyncIterator[str]:
    """A Slack Web API that takes every request and never answers (``usergroups.users.list``
    when Slack is slow): its ``SLACK_API_URL``."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def group_web(
    web_factory: WebFactory,
    redis: aioredis.Redis,
    tmp_path: Path,
    slack_api: str,
    glider: GliderClient | None = None,
) -> WebHarness:
    """The web app under POLICY, its Web API calls going to ``slack_api``."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return await web_factory(redis, glider, relay_policy_file=str(policy), slack_api_url=slack_api)


def test_the_deadline_caps_every_budget_to_what_is_left() -> None:
    """A step's budget is its own, or what is left of the deadline when that is less."""

    async def check() -> None:
        deadline = Deadline.within(0.2)
        assert deadline.cap(5.0) <= 0.2
        assert deadline.cap(0.05) == 0.05
        await asyncio.sleep(0.25)
        assert deadline.left() == 0.0
        assert deadline.cap(1.0) == 0.0

    asyncio.run(check())


def test_the_group_lookup_leaves_time_for_the_rest_of_the_ack() -> None:
    """The user groups can never use up the deadline alone."""
    assert ACK_BUDGET_S - LOOKUP_BUDGET_S >= 0.5
    assert ACK_BUDGET_S < SLACK_GIVES_UP_S


async def test_status_after_a_slow_group_lookup_still_acks_in_time(
    web_factory: WebFactory,
    fake_redis: aioredis.Redis,
    sim_factory: SimFactory,
    tmp_path: Path,
    silent_slack: str,
) -> None:
    """Slack does not list the group and Glider takes 1.9 s: with the group's 1.5 s spent,
    the ack does not wait out Glider too (the budgets added up would be 3.4 s, past Slack's
    3 s): it says "looking it up", and the status follows through the response_url."""
    sim = await sim_factory(latency_ms=1900)
    async with sim.client() as glider:
        web = await group_web(web_factory, fake_redis, tmp_path, silent_slack, glider)
        ack = await web.command(
            "/rebalance", f"status {PF_MAIN}", user_id="UOP1", user_name="olive"
        )
        assert "Looking up" in str(ack["text"])
        (late,) = await web.slack.wait_for(RESPONSE, within=10)
    assert "Schedule: *active*" in str(late.payload["blocks"])


async def test_an_enqueue_after_a_slow_group_lookup_still_acks_in_time(
    web_factory: WebFactory, fake_redis: aioredis.Redis, tmp_path: Path, silent_slack: str
) -> None:
    """Slack silent about the group and Redis not answering the enqueue: the ack says it
    could not confirm the command (the deadline ends the wait; the check follows)."""
    stalled = StalledRedis(fake_redis, lands=False)
    web = await group_web(web_factory, stalled, tmp_path, silent_slack)  # type: ignore[arg-type]
    ack = await web.command("/pause", "pf_1 quiet", user_id="UOP1")
    assert "Could not confirm" in str(ack["text"])


async def test_a_refusal_says_which_user_group_could_not_be_checked(
    web_factory: WebFactory, fake_redis: aioredis.Redis, tmp_path: Path, silent_slack: str
) -> None:
    """A user only a group would allow is refused while Slack is silent, and is told the
    group's membership could not be checked (not just that a role is missing)."""
    web = await group_web(web_factory, fake_redis, tmp_path, silent_slack)
    ack = await web.command("/pause", "pf_1", user_id="U0INGROUP")
    shown = str(ack["blocks"])
    assert "You may not pause" in shown
    assert f"`{GROUP}`" in shown
    assert "could not be checked" in shown
    assert await web.queued() == []
