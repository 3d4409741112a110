"""Client timeouts are exact: a subscriber answering just past the limit is a timeout."""

from __future__ import annotations

import asyncio
import math

import pytest
from aiohttp import web
from aiohttp.helpers import calculate_timeout_when
from pydantic import SecretStr

from relay.core.timeouts import exact_timeout
from relay.glider.client import GliderClient
from relay.slack.client import SlackApi
from relay.webhooks.claim_step import Claimed, Target
from relay.webhooks.models import TargetKind
from relay.webhooks.secrets import SigningKeys, new_secret
from relay.webhooks.sender import Sender, make_session
from tests.fixtures.webhooks import Receiver

LIMIT_S = 5.0  # aiohttp rounds timeouts from 5 s up: the smallest limit that shows it
LATE_S = 0.3


@pytest.mark.parametrize("seconds", [5.0, 10.0, 10.1, 30.0])
def test_exact_timeout_is_never_rounded(seconds: float) -> None:
    """aiohttp's deadline for an exact timeout is start + limit, not the next whole second."""
    timeout = exact_timeout(total=seconds)
    assert calculate_timeout_when(100.25, seconds, timeout.ceil_threshold) == 100.25 + seconds


async def test_every_client_of_the_relay_uses_exact_timeouts() -> None:
    """Webhook sender, Slack client and Glider client all turn the rounding off."""
    session = make_session(allow_private=True)
    slack = SlackApi(base_url="http://127.0.0.1:9/api/", token="xoxb-test")
    glider = GliderClient("http://127.0.0.1:9", SecretStr("gldr_sk_timeouts_test"))
    try:
        sender = Sender(session, allow_private=True)
        assert math.isinf(sender.timeout.ceil_threshold)
        assert math.isinf(slack._session.timeout.ceil_threshold)
        assert math.isinf(glider._timeout.ceil_threshold)
    finally:
        await session.close()
        await slack.close()
        await glider.close()


async def _past_the_limit(request: web.Request) -> web.Response:
    # The subscriber under test: it answers LATE_S after the limit (its own behaviour, not
    # a wait for a condition).
    await asyncio.sleep(LIMIT_S + LATE_S)
    return web.Response(status=200)


async def _start_in_first_half_of_a_second() -> None:
    """Start where rounding would move the deadline at least 0.5 s later (so main fails)."""
    loop = asyncio.get_running_loop()
    fraction = loop.time() % 1
    if fraction >= 0.5:
        await asyncio.sleep(1 - fraction)


async def test_answer_just_past_the_limit_is_a_timeout(receiver: Receiver) -> None:
    """A subscriber answering 0.3 s past a 5 s limit is a timeout, every time."""
    url = receiver.on("/late", _past_the_limit)
    target = Target(
        id="sub_t",
        kind=TargetKind.WEBHOOK,
        url=url,
        enabled=True,
        cap=1,
        signing=SigningKeys(new_secret()),
        failing_since_ms=None,
    )
    claimed = Claimed("dlv_t", "msg_t", b"{}", 0, "rebalance.completed")
    session = make_session(allow_private=True)
    sender = Sender(session, allow_private=True, timeout_s=LIMIT_S)
    try:
        await _start_in_first_half_of_a_second()
        result = await asyncio.wait_for(sender.attempt(target, claimed), LIMIT_S + 5)
    finally:
        await sender.close()
    assert result.attempt.error == "timed out"
    assert result.attempt.statusCode is None
    assert len(receiver.to("/late")) == 1
