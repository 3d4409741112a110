"""``glider-relay subscriptions ...`` and ``glider-relay deliveries ...``: straight to Redis.

Each handler returns an exit status: 0 done, 1 refused or not found, 2 bad configuration.
Secrets are printed only where the operator asked for one (``add``, ``rotate-secret``).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from bot.cli.common import fail as _fail
from bot.cli.common import filters_text, limit_arg, print_table, time_arg, when
from bot.cli.common import print_json as _print_json
from bot.cli.common import run_command as _run
from relay.settings import Settings
from relay.webhooks.deliveries import REPLAY_REFUSALS, DeliveryStore, SubscriptionDisabled
from relay.webhooks.models import Delivery, DeliveryStatus
from relay.webhooks.ssrf import GuardedResolver, UnsafeURL, check_destination
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore, TooManySecrets


async def _add(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    events = [e.strip() for e in args.events.split(",") if e.strip()]
    try:
        body = SubscriptionCreate(url=args.url, events=events, description=args.description)
        allow = settings.relay_allow_private_urls
        await check_destination(body.url, GuardedResolver(allow_private=allow), allow_private=allow)
    except ValidationError as exc:
        return _fail("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors()))
    except UnsafeURL as exc:
        return _fail(f"url {exc}")
    created = await SubscriptionStore(redis).create(body)
    _print_json(created.public())
    return 0


async def _list(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    items, _ = await SubscriptionStore(redis).page(cursor=None, limit=500)
    if args.json:
        _print_json([s.public() for s in items])
        return 0
    rows = [
        [
            sub.id,
            "enabled" if sub.enabled else f"disabled ({sub.disabledReason or 'by hand'})",
            ",".join(sub.events),
            when(sub.createdAt),
            sub.url,
        ]
        for sub in items
    ]
    header = ["ID", "STATE", "EVENTS", "CREATED", "URL"]
    print_table(header, rows, empty="no subscriptions")
    return 0


async def _rm(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    if not await SubscriptionStore(redis).delete(args.id):
        return _fail(f"no subscription {args.id}")
    print(f"deleted {args.id}")
    return 0


async def _rotate(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    try:
        rotated = await SubscriptionStore(redis).rotate_secret(args.id)
    except TooManySecrets as exc:
        return _fail(str(exc))
    if rotated is None:
        return _fail(f"no subscription {args.id}")
    print(f"{rotated.id} new secret: {rotated.secret}")
    print("each earlier secret keeps signing for 24 hours after it was replaced")
    return 0


def _delivery_row(delivery: Delivery) -> list[str]:
    last = delivery.attempts[-1] if delivery.attempts else None
    outcome = "-"
    if last is not None:
        outcome = (str(last.statusCode or "") + (f" {last.error}" if last.error else "")).strip()
    return [
        delivery.id,
        delivery.status.value,
        delivery.subscriptionId,
        delivery.eventType,
        when(delivery.createdAt),
        str(len(delivery.attempts)),
        when(last.at if last else None),
        outcome or "-",
        when(delivery.nextAttemptAt),
    ]


_DELIVERY_HEADER = [
    "ID",
    "STATUS",
    "SUBSCRIPTION",
    "EVENT",
    "CREATED",
    "TRIES",
    "LAST TRY",
    "LAST ANSWER",
    "NEXT ATTEMPT",
]


async def _deliveries(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    status = DeliveryStatus(args.status) if args.status else None
    items, _ = await DeliveryStore(redis).page(
        subscription_id=args.subscription, status=status, limit=args.limit
    )
    if args.json:
        _print_json([d.model_dump(mode="json") for d in items])
        return 0
    empty = "no deliveries match" + filters_text(status=args.status, subscription=args.subscription)
    print_table(_DELIVERY_HEADER, [_delivery_row(d) for d in items], empty=empty)
    return 0


async def _replay(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    outcome = await DeliveryStore(redis).replay(args.id)
    if outcome == "missing":
        return _fail(f"no delivery {args.id}")
    if outcome != "queued":
        return _fail(f"{args.id} not replayed: {REPLAY_REFUSALS.get(outcome, outcome)}")
    print(f"queued {args.id} again")
    return 0


async def _recover(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    since: datetime = args.since
    try:
        count = await DeliveryStore(redis).recover_since(since, subscription_id=args.subscription)
    except SubscriptionDisabled as exc:
        return _fail(str(exc))
    print(f"queued {count} dead or skipped deliveries again")
    return 0


def add_subscriptions_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``subscriptions add|list|rm|rotate-secret``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "subscriptions", help="manage webhook subscriptions"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="subscribe a URL (prints its secret)")
    add.add_argument("url", help="https:// endpoint that receives the events")
    add.add_argument("--events", default="*", help="comma-separated event types, or *")
    add.add_argument("--description", help="free text shown in list (default: none)")
    add.set_defaults(func=_run("subscriptions", _add))
    listing = actions.add_parser("list", help="every subscription")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_run("subscriptions", _list))
    rm = actions.add_parser("rm", help="delete a subscription")
    rm.add_argument("id", help="subscription id (sub_...)")
    rm.set_defaults(func=_run("subscriptions", _rm))
    rotate = actions.add_parser("rotate-secret", help="new secret; the old one signs for 24 h")
    rotate.add_argument("id", help="subscription id (sub_...)")
    rotate.set_defaults(func=_run("subscriptions", _rotate))
    return parser


def add_deliveries_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``deliveries list|replay|recover``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "deliveries", help="inspect and resend webhook deliveries"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest first")
    listing.add_argument(
        "--status",
        choices=[s.value for s in DeliveryStatus],
        help="only this status (default: all)",
    )
    listing.add_argument("--subscription", help="only this subscription id (default: all)")
    listing.add_argument("--limit", type=limit_arg, default=50, help="at most this many")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_run("deliveries", _deliveries))
    replay = actions.add_parser("replay", help="queue a delivery again")
    replay.add_argument("id", help="delivery id (dlv_...)")
    replay.set_defaults(func=_run("deliveries", _replay))
    recover = actions.add_parser("recover", help="queue every dead delivery since a time")
    recover.add_argument(
        "--since", type=time_arg, required=True, help="ISO 8601 time, e.g. 2026-11-22T08:00:00Z"
    )
    recover.add_argument("--subscription", help="only this subscription id (default: all)")
    recover.set_defaults(func=_run("deliveries", _recover))
    return parser
