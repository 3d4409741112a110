"""The overview chart's geometry (relay/console/chart.py) and the per-minute counter behind it."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.console.chart import HEIGHT, PAD, chart
from relay.store import keys
from relay.store.delivery_stats import KEEP_S, MinuteStat, last_hour, record_results


def test_bars_scale_to_the_busiest_minute_and_the_rate_line_skips_idle_minutes() -> None:
    """The busiest minute spans the plot; a minute without attempts has no rate point."""
    drawn = chart([MinuteStat(1, 0, 0), MinuteStat(2, 3, 1), MinuteStat(3, 1, 1)])
    assert [b.height for b in drawn.bars] == [0.0, HEIGHT - 2 * PAD, (HEIGHT - 2 * PAD) / 2]
    assert len(drawn.rate_dots) == 2
    assert drawn.rate_dots[0][1] < drawn.rate_dots[1][1]  # 75 % drawn above 50 %
    assert drawn.success_rate == "66.7 %"
    assert chart([]).success_rate == "no deliveries"


async def test_minutes_are_counted_and_expire(any_redis: aioredis.Redis) -> None:
    """Counts land in the current minute's hash, which expires; the hour reads oldest first."""
    now = 1_800_000_000_000
    await record_results(
        any_redis, {"succeeded": 2, "failed": 1, "dead": 1, "pending": 5}, now_ms=now
    )
    await record_results(any_redis, {"succeeded": 1}, now_ms=now - 60_000)
    hour = await last_hour(any_redis, now_ms=now)
    assert len(hour) == 60
    assert (hour[-1].succeeded, hour[-1].failed) == (2, 2)
    assert (hour[-2].succeeded, hour[-2].failed) == (1, 0)
    ttl = await any_redis.ttl(keys.delivery_minute(now // 60_000))
    assert 0 < ttl <= KEEP_S
