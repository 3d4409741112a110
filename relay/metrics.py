"""Every Prometheus metric glider-relay exports, defined in one place.

The web process serves them at ``/metrics``; each worker on ``WORKER_METRICS_PORT``.
The gauges read from Redis when scraped (queue depths, operations tracked, poll lag)
are shared truth, not per process: they live in :data:`SHARED` and only the web
process exports them, so a ``sum()`` over every target is not multiplied by the
number of workers. Counters and histograms are per process and add up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError, ResponseError

from relay.core.clock import epoch_ms
from relay.listen import start_site
from relay.store import keys
from relay.store.connection import text

log = logging.getLogger(__name__)

# The Redis-derived gauges: exported by the web process only (see the module docstring).
SHARED = CollectorRegistry()

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

COMMANDS_TOTAL = Counter(
    "glider_relay_commands_total",
    "Slack commands by outcome at intake (accepted, or refused with a reason).",
    ["command", "outcome"],
)
SLACK_REFUSED = Counter(
    "glider_relay_slack_requests_refused_total",
    "Requests to /slack/events refused before intake: forged or unsigned (unsigned, "
    "bad_timestamp, stale, mismatch: 401) or signed but unparseable (400).",
    ["reason"],
)
UNKNOWN_ACKS = Counter(
    "glider_relay_unknown_acks_settled_total",
    "Commands acked as 'could not confirm it was queued', by what settling found "
    "(queued, duplicate, abandoned, still_unknown).",
    ["result"],
)
GLIDER_REQUESTS = Counter(
    "glider_relay_glider_requests_total",
    "Requests to the Glider API by route template and HTTP status (or error kind).",
    ["route", "status"],
)
GLIDER_LATENCY = Histogram(
    "glider_relay_glider_request_seconds",
    "Latency of Glider API requests by route template.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
OPERATIONS_TRACKED = Gauge(
    "glider_relay_operations_tracked",
    "Glider operations currently tracked by the poller.",
    registry=SHARED,
)
POLL_LAG = Gauge(
    "glider_relay_poll_lag_seconds",
    "How late the most overdue operation poll is.",
    registry=SHARED,
)
DELIVERIES = Counter(
    "glider_relay_deliveries_total",
    "Webhook delivery attempts by result (succeeded, failed, dead).",
    ["result"],
)
DELIVERIES_REJECTED = Counter(
    "glider_relay_deliveries_rejected_total",
    "Deliveries dead at once because the receiver refused the message itself "
    "(PagerDuty's 400 invalid event): retrying could never succeed.",
)
DELIVERY_LATENCY = Histogram(
    "glider_relay_delivery_seconds",
    "Latency of webhook delivery attempts.",
    buckets=_LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "glider_relay_queue_depth",
    "Entries waiting, by queue (commands, events, retry, dead letters).",
    ["queue"],
    registry=SHARED,
)
SUBSCRIPTIONS_DISABLED = Counter(
    "glider_relay_subscriptions_disabled_total",
    "Subscriptions disabled automatically, by reason (gone, failing).",
    ["reason"],
)
STORE_RECOVERIES = Counter(
    "glider_relay_store_recoveries_total",
    "State a reader found missing in Redis and recreated (Redis lost data), by what.",
    ["what"],
)
REDIS_EVICTING = Gauge(
    "glider_relay_redis_evicting",
    "1 while Redis's maxmemory-policy evicts keys (anything but noeviction).",
)
REDIS_FULL = Gauge(
    "glider_relay_redis_full",
    "1 while Redis answers OOM to writes.",
)


async def refresh_shared_gauges(redis: aioredis.Redis, *, now_ms: int | None = None) -> None:
    """Read queue depths and poll lag from Redis into the gauges (called on each scrape)."""
    for stream, group in (
        (keys.COMMAND_STREAM, keys.COMMANDS_GROUP),
        (keys.EVENTS, keys.EVENTS_GROUP),
        (keys.REPLIES, keys.REPLIES_GROUP),
    ):
        name = stream.removeprefix(f"{keys.PREFIX}:")
        pending, lag = await _group_depth(redis, stream, group)
        QUEUE_DEPTH.labels(queue=f"{name}_pending").set(pending)
        QUEUE_DEPTH.labels(queue=f"{name}_undelivered").set(lag)
    for dead in (keys.COMMANDS_DEAD, keys.REPLIES_DEAD):
        QUEUE_DEPTH.labels(queue=dead.removeprefix(f"{keys.PREFIX}:")).set(await redis.xlen(dead))
    for status in ("pending", "failed", "dead"):
        depth = await redis.zcard(keys.deliveries_by_status(status))
        QUEUE_DEPTH.labels(queue=f"deliveries_{status}").set(depth)
    OPERATIONS_TRACKED.set(await redis.zcard(keys.POLL_DUE))
    oldest = await redis.zrange(keys.POLL_DUE, 0, 0, withscores=True)
    current_ms = epoch_ms() if now_ms is None else now_ms
    POLL_LAG.set(max(0.0, (current_ms - float(oldest[0][1])) / 1000) if oldest else 0.0)


async def _group_depth(redis: aioredis.Redis, stream: str, group: str) -> tuple[int, int]:
    """(pending, undelivered) of a consumer group; zeros before the group exists."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0, 0
    for info in groups:
        if text(info.get("name", b"")) == group:
            return int(info.get("pending") or 0), int(info.get("lag") or 0)
    return 0, 0


async def metrics_endpoint(request: web.Request) -> web.Response:
    """``GET /metrics``: this process's metrics, plus the shared gauges freshly read from Redis
    where this app exports them (the web process)."""
    body = generate_latest(REGISTRY)
    redis = request.app.get(METRICS_REDIS)
    if redis is not None:
        try:
            await refresh_shared_gauges(redis)
        except RedisError as exc:
            log.warning("metrics: Redis unreachable, depths are stale", extra={"error": repr(exc)})
        body += generate_latest(SHARED)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


METRICS_REDIS = web.AppKey("metrics_redis", aioredis.Redis)


def add_metrics_route(app: web.Application, redis: aioredis.Redis | None) -> None:
    """Serve ``/metrics`` on ``app``; with ``redis``, also the shared gauges (web process only)."""
    if redis is not None:
        app[METRICS_REDIS] = redis
    app.router.add_get("/metrics", metrics_endpoint)


@asynccontextmanager
async def metrics_server(
    port: int | None,
    host: str = "0.0.0.0",  # noqa: S104 - scraped
    *,
    routes: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[str | None]:
    """Serve ``/metrics`` on ``port`` while the body runs (a worker's metrics port).

    ``routes`` adds more (the worker's health routes). The worker's own counters only:
    the shared gauges come from the web process. Yields the bound address as
    ``host:port``, or None when ``port`` is None.
    """
    if port is None:
        yield None
        return
    app = web.Application()
    add_metrics_route(app, None)
    if routes is not None:
        routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await start_site(runner, host, port, what="worker metrics (WORKER_METRICS_PORT)")
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
