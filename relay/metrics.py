"""Every Prometheus metric glider-relay exports, defined in one place.

The web process serves them at ``/metrics``; each worker on ``WORKER_METRICS_PORT``.
Depth gauges (streams, retry queues, dead letters) are read from Redis when
scraped, so every process reports the same shared truth.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

COMMANDS = Counter(
    "glider_relay_commands_total",
    "Slack commands by outcome at intake (accepted, or refused with a reason).",
    ["command", "outcome"],
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
)
POLL_LAG = Gauge(
    "glider_relay_poll_lag_seconds",
    "How late the most overdue operation poll is.",
)
DELIVERIES = Counter(
    "glider_relay_deliveries_total",
    "Webhook delivery attempts by result (succeeded, failed, dead).",
    ["result"],
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
)
SUBSCRIPTIONS_DISABLED = Counter(
    "glider_relay_subscriptions_disabled_total",
    "Subscriptions disabled automatically, by reason (gone, failing).",
    ["reason"],
)
