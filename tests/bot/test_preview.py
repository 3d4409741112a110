"""The /rebalance preview on Glider data the simulator never sends, over HTTP (bot/preview.py)."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from tests.fixtures.glider_script import (
    NAIVE_SCHEDULE,
    NOON_TOKEN,
    ScriptedGlider,
    ServerFactory,
    scripted_glider,
)
from tests.fixtures.web import WebFactory, WebHarness

PF = "pf_preview"
KEY = "gldr_sk_preview_test"


async def preview_of(web_factory: WebFactory, redis: aioredis.Redis, glider: ScriptedGlider) -> str:
    """The preview's blocks as JSON (nothing is queued by a preview)."""
    async with glider.client(KEY) as client:
        web: WebHarness = await web_factory(redis, client, bot_confirm_rebalance=True)
        ack = await web.command("/rebalance", PF)
        assert await web.queued() == []
    return json.dumps(ack["blocks"])


async def test_preview_reads_times_without_an_offset_as_utc(
    web_factory: WebFactory, fake_redis: aioredis.Redis, aiohttp_server: ServerFactory
) -> None:
    """``nextDueAt`` without ``Z`` still gives a preview (and so a Confirm button), in UTC."""
    glider = await scripted_glider(aiohttp_server, PF)
    glider.schedule(**NAIVE_SCHEDULE)
    glider.positions["fetchedAt"] = "2026-11-21T12:00:00"
    text = await preview_of(web_factory, fake_redis, glider)
    assert f"Next due: {NOON_TOKEN}" in text
    assert "Total value: $1,500.00" in text
    assert "rebalance.confirm" in text


async def test_preview_with_an_absurd_amount_says_positions_are_unavailable(
    web_factory: WebFactory, fake_redis: aioredis.Redis, aiohttp_server: ServerFactory
) -> None:
    """A value such as 1E+60 is not formatted: the preview names the positions as missing."""
    glider = await scripted_glider(aiohttp_server, PF)
    glider.positions["assets"][1]["valueUsd"] = "1E+60"
    text = await preview_of(web_factory, fake_redis, glider)
    assert "Positions are unavailable" in text
    assert "Total value" not in text
    assert "Next due: <!date^" in text  # the portfolio's own facts are still there


async def test_preview_with_a_huge_exponent_answers_at_once(
    web_factory: WebFactory, fake_redis: aioredis.Redis, aiohttp_server: ServerFactory
) -> None:
    """The red team's 1E+100000000 (formatting it froze the web process): the positions are
    refused as malformed at the model, so nothing formats them."""
    glider = await scripted_glider(aiohttp_server, PF)
    glider.positions["totalValueUsd"] = "1E+100000000"
    text = await preview_of(web_factory, fake_redis, glider)
    assert "Positions are unavailable" in text
