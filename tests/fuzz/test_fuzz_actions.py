"""Fuzzing block_actions clicks: no 5xx, and no refused click changes anything.

A preview awaiting its requester and an approval request awaiting an approver are
set up through the real flow; then signed ``block_actions`` payloads of random
shape, action ids, tokens (the real ones, near misses, junk) and users (never
one entitled to act: the requester on approvals, other users on the preview,
non-approvers) are POSTed. Every answer is 2xx or 4xx, and Redis (confirmations,
approvals, the command, event and audit streams) is exactly as before.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.confirm_messages import CANCEL, CONFIRM
from bot.oncall_clicks import ACTION_IDS as ONCALL_ACTIONS
from relay.sim.config import PF_MAIN
from relay.slack.approvals import APPROVE, REJECT
from relay.store import keys
from relay.webhooks.oncall import portfolio_key
from tests.bot.test_approvals import REQUESTER, approvals_web
from tests.bot.test_confirm import answer, buttons, click
from tests.fixtures.glider import GliderSim
from tests.fixtures.slack import slack_signature
from tests.fixtures.web import WebFactory, WebHarness
from tests.fuzz.support import FUZZ, Tally

EXAMPLES = 300
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture
async def setup(
    web_factory: WebFactory, real_redis: aioredis.Redis, glider_sim: GliderSim, tmp_path: Path
) -> tuple[WebHarness, str, str]:
    """A web app with one pending preview and one pending approval request (their tokens)."""
    web = await approvals_web(web_factory, real_redis, glider_sim, tmp_path)
    first = await web.command("/rebalance", PF_MAIN, **REQUESTER)
    await answer(web, await click(web, CONFIRM, buttons(first)[CONFIRM]["value"], **REQUESTER))
    (posted,) = await web.slack.wait_for("chat.postMessage")
    approval = buttons(posted.payload)[APPROVE]["value"]
    second = await web.command("/rebalance", "pf_waiting", **REQUESTER)
    return web, buttons(second)[CONFIRM]["value"], approval


async def footprint(redis: aioredis.Redis) -> tuple[Any, ...]:
    """Everything a click could change, as it stands."""
    stored = sorted(
        [k async for k in redis.scan_iter(match=keys.CONFIRMATION + "*")]
        + [k async for k in redis.scan_iter(match=keys.APPROVAL + "*")]
    )
    states = [await redis.hget(k, "state") for k in stored]
    streams = [await redis.xlen(s) for s in (keys.COMMAND_STREAM, keys.EVENTS, keys.AUDIT)]
    return await redis.dbsize(), stored, states, streams, await redis.zcard(keys.APPROVALS_DUE)


@st.composite
def clicks(draw: st.DrawFn, preview: str, approval: str) -> dict[str, Any]:
    known = [CONFIRM, CANCEL, APPROVE, REJECT, *ONCALL_ACTIONS]
    action_id = draw(st.sampled_from(known) | st.text(max_size=30))
    # On-call values name no open incident and no failed request here: nothing may change.
    forged = [portfolio_key(PF_MAIN), "req_01JNOSUCHREQUEST0000000000"]
    value = draw(
        st.sampled_from([preview, approval, preview[:-1] + "x", approval.upper(), "", *forged])
        | st.text(max_size=70)
    )
    user = draw(st.sampled_from(["UOP1", "UOP4", "U9XX", ""]) | st.text(max_size=12))
    # The only clicks entitled to act: the requester on the preview, an approver on approvals.
    assume(not (user == "UOP1" and value == preview and action_id in (CONFIRM, CANCEL)))
    action: Any = {"type": "button", "action_id": action_id, "value": value}
    payload: dict[str, Any] = {
        "type": draw(st.sampled_from(["block_actions", "block_actions", "view_submission"])),
        "user": {"id": user, "username": draw(st.text(max_size=20))},
        "team": {"id": "T1"},
        "response_url": draw(
            st.sampled_from(["https://hooks.slack.invalid/x", "http://169.254.169.254/", ""])
        ),
        "actions": [action],
    }
    for _ in range(draw(st.integers(0, 2))):  # damage: a field replaced by anything
        payload[draw(st.sampled_from(["user", "team", "actions", "response_url", "type"]))] = draw(
            JSONISH
        )
    return payload


def signed(payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)})
    ts = int(time.time())
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": slack_signature(body, ts),
    }


@pytest.mark.cases(EXAMPLES, "2xx")
@settings(FUZZ, max_examples=EXAMPLES)
@given(data=st.data())
async def test_refused_clicks_never_5xx_and_change_nothing(
    tally: Tally, setup: tuple[WebHarness, str, str], data: st.DataObject
) -> None:
    web, preview, approval = setup
    before = await footprint(web.redis)
    body, headers = signed(data.draw(clicks(preview, approval)))
    response = await web.client.post("/slack/events", data=body, headers=headers)
    assert response.status < 500, await response.text()
    tally.add(f"{response.status // 100}xx")
    assert await footprint(web.redis) == before
