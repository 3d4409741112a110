"""Every Redis key name, in one place.

All keys share the hash tag ``{gr}`` so that every multi-key Lua script and
MULTI runs unchanged on Redis Cluster (one slot). Throughput on Cluster is
therefore that of one shard; the design favours atomicity over sharding.
"""

from __future__ import annotations

PREFIX = "{gr}"

# Command queue (Slack -> executor)
COMMANDS = f"{PREFIX}:commands"  # stream of accepted commands
COMMANDS_GROUP = "executors"
COMMANDS_DEAD = f"{PREFIX}:commands:dead"  # stream of commands delivered too often
TRIGGER_SEEN = f"{PREFIX}:trigger:"  # + trigger_id -> request id (idempotent enqueue)

# Tracked requests and their Glider operations
REQUEST = f"{PREFIX}:req:"  # + request id -> hash (the request record)
# Indexes are zsets with score 0 ordered by member: ids are prefixed ULIDs, so
# lexical order is time order and ZRANGEBYLEX pages them with an id as cursor.
REQUESTS = f"{PREFIX}:reqs"  # index of request ids
PORTFOLIO_LATEST = f"{PREFIX}:pf:latest:"  # + portfolio id -> latest request id
PORTFOLIO_INFLIGHT = f"{PREFIX}:pf:inflight:"  # + portfolio id -> in-flight request id

# Poller
POLL_DUE = f"{PREFIX}:poll:due"  # zset request id by next-poll-at ms (a lease pushes it on)

# Shared Glider rate budget
GLIDER_BUCKET = f"{PREFIX}:ratelimit:glider"

# Events (outcomes -> dispatcher)
EVENTS = f"{PREFIX}:events"
EVENTS_GROUP = "dispatchers"

# Webhooks
SUBSCRIPTION = f"{PREFIX}:sub:"  # + subscription id -> hash
SUBSCRIPTIONS = f"{PREFIX}:subs"  # index of subscription ids
DELIVERY = f"{PREFIX}:dlv:"  # + delivery id -> hash
DELIVERIES = f"{PREFIX}:dlvs"  # index of delivery ids


def trigger_seen(trigger_id: str) -> str:
    return TRIGGER_SEEN + trigger_id


def request(request_id: str) -> str:
    return REQUEST + request_id


def portfolio_latest(portfolio_id: str) -> str:
    return PORTFOLIO_LATEST + portfolio_id


def portfolio_inflight(portfolio_id: str) -> str:
    return PORTFOLIO_INFLIGHT + portfolio_id


def subscription(subscription_id: str) -> str:
    return SUBSCRIPTION + subscription_id


def delivery(delivery_id: str) -> str:
    return DELIVERY + delivery_id


# --- Worker: executor, poller, requester replies ----------------------------------
REPLIES = f"{PREFIX}:replies"  # stream: request id + kind, for each outcome the requester hears
REPLIES_GROUP = "notifiers"
REPLIES_DEAD = f"{PREFIX}:replies:dead"
