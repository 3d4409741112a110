"""Every Redis key name, in one place.

All keys share the hash tag ``{gr}`` so that every multi-key Lua script and
MULTI runs unchanged on Redis Cluster (one slot). Throughput on Cluster is
therefore that of one shard; the design favours atomicity over sharding.
"""

from __future__ import annotations

PREFIX = "{gr}"

# Command queue (Slack -> executor)
COMMAND_STREAM = f"{PREFIX}:commands"  # stream of accepted commands
COMMANDS_GROUP = "executors"
COMMANDS_DEAD = f"{PREFIX}:commands:dead"  # stream of commands delivered too often
TRIGGER_SEEN = f"{PREFIX}:trigger:"  # + trigger_id -> request id (idempotent enqueue)
# + request id -> "1": the web declared this request not queued; a late enqueue does nothing
ABANDONED = f"{PREFIX}:abandoned:"

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

# Readiness: a short-lived key written to learn whether Redis accepts writes (not OOM)
WRITE_PROBE = f"{PREFIX}:health:probe"

# Events (outcomes -> dispatcher)
EVENTS = f"{PREFIX}:events"
EVENTS_GROUP = "dispatchers"

# Audit log (relay/store/audit.py): a stream of entry JSON, appended in each change's own step
AUDIT = f"{PREFIX}:audit"

# Webhooks
SUBSCRIPTION = f"{PREFIX}:sub:"  # + subscription id -> hash
SUBSCRIPTIONS = f"{PREFIX}:subs"  # index of subscription ids
DELIVERY = f"{PREFIX}:dlv:"  # + delivery id -> hash
DELIVERIES = f"{PREFIX}:dlvs"  # index of delivery ids

# --- Webhook dispatcher (relay/webhooks) ---------------------------------------
# A subscription hash (SUBSCRIPTION + id) has beside it, under the same name:
#   ":due"       zset delivery id by due-at ms (its own retry queue)
#   ":inflight"  zset delivery id by lease expiry ms (claimed, being sent)
#   ":dlvs"      index of its delivery ids; ":dlvs:<status>" the same by status
SUBSCRIPTIONS_BY_TYPE = f"{PREFIX}:subs:type:"  # + event type or "*" -> set of enabled ids
SUBSCRIPTIONS_VERSION = f"{PREFIX}:subs:version"  # bumped on every subscription change
SUBSCRIPTIONS_READY = f"{PREFIX}:subs:ready"  # zset subscription id by next-work-at ms
DELIVERIES_BY_STATUS = f"{PREFIX}:dlvs:"  # + status -> index of delivery ids
ONCALL_OPEN = f"{PREFIX}:oncall:open:"  # + dedup key -> "1" while an alert is open


def trigger_seen(trigger_id: str) -> str:
    return TRIGGER_SEEN + trigger_id


def abandoned(request_id: str) -> str:
    return ABANDONED + request_id


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


def subscription_due(subscription_id: str) -> str:
    return SUBSCRIPTION + subscription_id + ":due"


def subscription_inflight(subscription_id: str) -> str:
    return SUBSCRIPTION + subscription_id + ":inflight"


def subscription_deliveries(subscription_id: str, status: str | None = None) -> str:
    base = SUBSCRIPTION + subscription_id + ":dlvs"
    return base if status is None else f"{base}:{status}"


def subscriptions_by_type(event_type: str) -> str:
    return SUBSCRIPTIONS_BY_TYPE + event_type


def deliveries_by_status(status: str) -> str:
    return DELIVERIES_BY_STATUS + status


def oncall_open(dedup_key: str) -> str:
    return ONCALL_OPEN + dedup_key


# The on-call alert's Slack message (relay/webhooks/alert_card.py): + dedup key -> hash of
# what it shows and {v, r, ch, ts} as a job card's; beside it ":lock", its render lock.
ONCALL_ALERT = f"{PREFIX}:oncall:alert:"


def oncall_alert(dedup_key: str) -> str:
    return ONCALL_ALERT + dedup_key


def oncall_alert_lock(dedup_key: str) -> str:
    return ONCALL_ALERT + dedup_key + ":lock"


# --- Worker: executor, poller, requester replies ----------------------------------
REPLIES = f"{PREFIX}:replies"  # stream: request id + kind, for each outcome the requester hears
REPLIES_GROUP = "notifiers"
REPLIES_DEAD = f"{PREFIX}:replies:dead"
# Job cards (relay/worker/cards.py): + request id -> hash {v: latest version, r: version
# rendered, via, ch, ts}; beside it ":lock" -> the token of the notifier rendering it.
CARD = f"{PREFIX}:card:"
CARDS = f"{PREFIX}:cards"  # stream: request id + version, one per card version
CARDS_GROUP = "card-senders"
CARDS_DEAD = f"{PREFIX}:cards:dead"


def card(request_id: str) -> str:
    return CARD + request_id


def card_lock(request_id: str) -> str:
    return CARD + request_id + ":lock"


# --- Safe commands (docs/contract.md §8): confirmations, approvals, audit ----------
AUDIT = f"{PREFIX}:audit"  # stream of AuditEntry JSON (field `entry`)
CONFIRMATION = f"{PREFIX}:confirm:"  # + opaque token -> hash: a preview awaiting its click
APPROVAL = f"{PREFIX}:approval:"  # + opaque token -> hash: an approval request
APPROVALS_DUE = f"{PREFIX}:approvals:due"  # zset approval token by expires-at ms
# zset approval token by decided-at ms: approved, and its enqueue not yet known to have run
# (the deciding web process removes it once the enqueue answered; the worker queues the
# command of one left behind, relay/slack/approvals.py queue_stranded).
APPROVALS_TO_QUEUE = f"{PREFIX}:approvals:to_queue"


def confirmation(token: str) -> str:
    return CONFIRMATION + token


def approval(token: str) -> str:
    return APPROVAL + token


# --- Console and partner portal (relay/console) ----------------------------------------
# + epoch minute -> hash {succeeded, failed, dead}: attempts recorded in that minute
# (the overview chart); each expires two hours after it was last written.
DELIVERY_MINUTE = f"{PREFIX}:stats:dlv:"
CONSOLE_SESSION = f"{PREFIX}:console:session:"  # + sha256 of a session id -> Session JSON
CONSOLE_SIGNIN = f"{PREFIX}:console:signin:"  # + client address -> failed sign-ins (expiring)
# + subscription id -> generation: bumping it revokes every portal link issued before
PORTAL_GENERATION = f"{PREFIX}:portal:gen:"


def delivery_minute(minute: int) -> str:
    return DELIVERY_MINUTE + str(minute)


def console_session(session_id: str) -> str:
    return CONSOLE_SESSION + session_id


def console_signin(client: str) -> str:
    return CONSOLE_SIGNIN + client


def portal_generation(subscription_id: str) -> str:
    return PORTAL_GENERATION + subscription_id


# --- App Home and /rebalance list (bot/listing.py) -----------------------------------
# Glider's portfolio list (relay.core.listing.Listing JSON), cached a few seconds so a
# burst of Home tab opens on any number of web processes costs Glider one walk.
PORTFOLIO_LIST = f"{PREFIX}:cache:portfolios"
