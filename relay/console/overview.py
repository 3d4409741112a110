"""What the overview page shows: queue depths, poll lag, the chart, disabled subscriptions.

Depths and lag are read by :func:`relay.metrics.refresh_shared_gauges`, the very
code ``/metrics`` uses, so the page and the dashboards agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from relay import metrics
from relay.console.chart import Chart, chart
from relay.core.clock import epoch_ms
from relay.store.delivery_stats import last_hour
from relay.webhooks.models import Subscription
from relay.webhooks.subscriptions import SubscriptionStore

SUBSCRIPTIONS_SHOWN = 200


@dataclass(frozen=True, slots=True)
class Overview:
    depths: dict[str, int]
    poll_lag_s: float
    tracked: int
    chart: Chart
    subscriptions: list[Subscription]  # disabled ones first

    @property
    def disabled(self) -> list[Subscription]:
        return [s for s in self.subscriptions if not s.enabled]


def _gauges() -> tuple[dict[str, int], float, int]:
    depths: dict[str, int] = {}
    lag, tracked = 0.0, 0
    for family in metrics.SHARED.collect():
        for sample in family.samples:
            if sample.name == "glider_relay_queue_depth":
                depths[sample.labels["queue"]] = int(sample.value)
            elif sample.name == "glider_relay_poll_lag_seconds":
                lag = sample.value
            elif sample.name == "glider_relay_operations_tracked":
                tracked = int(sample.value)
    return dict(sorted(depths.items())), lag, tracked


async def overview(redis: aioredis.Redis) -> Overview:
    now = epoch_ms()
    await metrics.refresh_shared_gauges(redis, now_ms=now)
    depths, lag, tracked = _gauges()
    subs, _ = await SubscriptionStore(redis).page(cursor=None, limit=SUBSCRIPTIONS_SHOWN)
    subs.sort(key=lambda s: s.enabled)
    return Overview(depths, lag, tracked, chart(await last_hour(redis, now_ms=now)), subs)
