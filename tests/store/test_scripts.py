"""The one Lua loader: files, includes, EVALSHA with a NOSCRIPT fallback, pipelined calls."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from relay.store.connection import text
from relay.store.scripts import LuaScript

RESERVE = LuaScript("ratelimit_reserve.lua")


def test_includes_are_pasted_in_and_the_sha_is_of_the_whole_source() -> None:
    """``--! include now_us.lua`` becomes that file's text; no include line is left."""
    assert "redis.call('TIME')" in RESERVE.source
    assert "--! include" not in RESERVE.source
    assert len(RESERVE.sha) == 40


async def test_a_flushed_script_cache_is_reloaded_and_the_call_runs_once(
    any_redis: aioredis.Redis,
) -> None:
    """After SCRIPT FLUSH (a restarted Redis) the call still runs, exactly once."""
    await RESERVE(any_redis, ["bucket"], ["1000000", 100, 0])
    await any_redis.script_flush()
    wait = await RESERVE(any_redis, ["bucket"], ["1000000", 100, 0])
    assert int(wait) == 100  # the second reservation waits one interval: one run, not two


async def test_run_many_keeps_order_and_gives_each_call_its_error(
    any_redis: aioredis.Redis,
) -> None:
    """Calls go in order in one round trip; a failing call's error stays in its slot."""
    await any_redis.script_flush()
    await any_redis.set("not-a-number", "x")
    results = await RESERVE.run_many(
        any_redis,
        [
            (["b"], ["1000000", 100, 0]),
            (["not-a-number"], ["1000000", 100, 0]),
            (["b"], ["1000000", 100, 0]),
        ],
    )
    first, failed, third = results
    assert isinstance(failed, ResponseError)
    assert not isinstance(first, Exception)
    assert not isinstance(third, Exception)
    assert (int(text(first)), int(text(third))) == (0, 100)
