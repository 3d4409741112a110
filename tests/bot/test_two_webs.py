"""The safe-command flows on two real ``glider-relay web`` processes sharing one Redis.

Previews, clicks and decisions go to either process at random; the atomic steps in
Redis make the outcome the same as on one: one command per confirmation, one
decision per approval request, refusals that change nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bot.confirm_messages import CANCEL, CONFIRM
from relay.core.commands import QueuedCommand
from relay.sim.config import ADMIN_KEY, PF_MAIN, PF_SHORT
from relay.slack.approvals import APPROVE, REJECT
from relay.store import keys
from relay.store.connection import text_map
from tests.bot.test_approvals import CHANNEL, POLICY
from tests.bot.test_confirm import buttons
from tests.bot.test_web_process import _env, _web
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import (
    BOT_TOKEN,
    LOOPBACK_HOST,
    RESPONSE,
    SIGNING_SECRET,
    FakeSlack,
    SignedRequest,
    signed_action,
    signed_command,
)


@asynccontextmanager
async def two_webs(
    redis_url: str, slack: FakeSlack, sim: GliderSim, tmp_path: Path
) -> AsyncIterator[list[aiohttp.ClientSession]]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = _env(
        REDIS_URL=redis_url,
        PORT="0",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=slack.api_url,
        SLACK_RESPONSE_URL_HOSTS=LOOPBACK_HOST,
        GLIDER_API_URL=sim.url,
        GLIDER_API_KEY=ADMIN_KEY,
        RELAY_POLICY_FILE=str(policy),
        APPROVALS_SLACK_CHANNEL=CHANNEL,
        LOG_LEVEL="INFO",  # _web waits for "web listening"
    )
    async with AsyncExitStack() as stack:
        started = [await stack.enter_async_context(_web(env)) for _ in range(2)]
        yield [await stack.enter_async_context(aiohttp.ClientSession(url)) for _, url in started]


async def post(http: aiohttp.ClientSession, request: SignedRequest) -> dict[str, Any]:
    async with http.post("/slack/events", data=request.body, headers=request.headers) as answer:
        assert answer.status == 200, await answer.text()
        raw = await answer.read()
    return json.loads(raw) if raw else {}


async def click(
    slack: FakeSlack, http: aiohttp.ClientSession, action: str, token: str, user: str
) -> str:
    """A click on ``http``'s process; the text of its answer on the click's response_url."""
    url = slack.response_url()
    await post(http, signed_action(action, token, user_id=user, response_url=url))
    path = url.removeprefix(slack.base_url)
    (call,) = await slack.wait_for(RESPONSE, where=lambda c: c.path == path, within=10)
    return str(call.payload["text"])


async def queued(redis: aioredis.Redis) -> list[QueuedCommand]:
    entries = await redis.xrange(keys.COMMAND_STREAM) or []
    return [QueuedCommand.model_validate_json(text_map(f or {})["command"]) for _, f in entries]


async def test_confirm_and_cancel_on_two_processes(
    redis_url: str,
    real_redis: aioredis.Redis,
    fake_slack: FakeSlack,
    glider_sim: GliderSim,
    tmp_path: Path,
) -> None:
    """Preview on one, eight concurrent Confirms across both: one command; a preview
    cancelled on the other process queues nothing, even when Confirm follows."""
    async with two_webs(redis_url, fake_slack, glider_sim, tmp_path) as (a, b):
        ack = await post(a, signed_command("/rebalance", PF_SHORT, user_id="UOP1"))
        token = buttons(ack)[CONFIRM]["value"]
        texts = await asyncio.gather(
            *(click(fake_slack, web, CONFIRM, token, "UOP1") for web in [a, b] * 4)
        )
        (command,) = await queued(real_redis)
        assert all(f"`{command.request_id}`" in text for text in texts)
        other = await click(fake_slack, b, CONFIRM, token, "UOP4")
        assert "Only the person who asked" in other
        second = await post(b, signed_command("/rebalance", "pf_other", user_id="UOP1"))
        cancel = buttons(second)[CANCEL]["value"]
        assert "nothing was queued" in await click(fake_slack, a, CANCEL, cancel, "UOP1")
        await click(fake_slack, b, CONFIRM, cancel, "UOP1")
        assert len(await queued(real_redis)) == 1


async def test_approvals_on_two_processes(
    redis_url: str,
    real_redis: aioredis.Redis,
    fake_slack: FakeSlack,
    glider_sim: GliderSim,
    tmp_path: Path,
) -> None:
    """Self-approval refused on either; two approvers racing on both: one decision wins,
    the message is updated once, the loser is told who decided."""
    async with two_webs(redis_url, fake_slack, glider_sim, tmp_path) as (a, b):
        ack = await post(a, signed_command("/rebalance", PF_MAIN, user_id="UOP1"))
        assert "waiting for approval" in await click(
            fake_slack, b, CONFIRM, buttons(ack)[CONFIRM]["value"], "UOP1"
        )
        (posted,) = await fake_slack.wait_for("chat.postMessage", within=10)
        token = buttons(posted.payload)[APPROVE]["value"]
        for web in (a, b):
            assert "someone else must decide" in await click(
                fake_slack, web, APPROVE, token, "UOP1"
            )
        texts = await asyncio.gather(
            click(fake_slack, a, APPROVE, token, "UAP2"),
            click(fake_slack, b, REJECT, token, "UAP3"),
            click(fake_slack, b, APPROVE, token, "UAP2"),
            click(fake_slack, a, REJECT, token, "UAP3"),
        )
        assert sum("already" in text for text in texts) == 3
        (update,) = await fake_slack.wait_for("chat.update", within=10)
        commands = await queued(real_redis)
        if "Approved" in update.payload["text"]:
            (command,) = commands
            assert command.approved_by is not None
            assert command.approved_by.user_id == "UAP2"
        else:
            assert commands == []
        assert len(fake_slack.calls_to("chat.update")) == 1
