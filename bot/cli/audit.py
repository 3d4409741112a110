"""``glider-relay audit list``: the audit log, newest first, straight from Redis.

Exit status: 0 listed (also when nothing matches: "no entries match"), 2 bad
configuration or arguments. Text that came from outside (a pause reason, a Slack
user name) is printed with control characters escaped, so it cannot drive the
operator's terminal.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import redis.asyncio as aioredis

from bot.cli.common import run_command, time_arg
from relay.admin.common import MAX_LIMIT
from relay.core.audit import AuditAction, AuditEntry
from relay.settings import Settings
from relay.store.audit import AuditFilter, AuditStore, known_subjects

HEADER = ("AT", "ACTION", "ACTOR", "PORTFOLIO", "REQUEST/SUBSCRIPTION", "DETAIL")
_WIDTHS = (20, 28, 24, 30, 30)


def _printable(value: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in value)


def _actor(entry: AuditEntry) -> str:
    actor = entry.actor
    if actor.source != "slack":
        return actor.source
    name = f" ({actor.user_name})" if actor.user_name else ""
    return f"slack:{actor.user_id or '?'}{name}"


def _row(entry: AuditEntry) -> str:
    cells = (
        entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        entry.action.value,
        _actor(entry),
        entry.portfolio_id or "-",
        entry.request_id or entry.subscription_id or "-",
    )
    fixed = "  ".join(_printable(c).ljust(w) for c, w in zip(cells, _WIDTHS, strict=True))
    return f"{fixed}  {_printable(entry.detail or '')}".rstrip()


def _header() -> str:
    return "  ".join(h.ljust(w) for h, w in zip(HEADER, (*_WIDTHS, 0), strict=True)).rstrip()


async def _entries(redis: aioredis.Redis, where: AuditFilter, limit: int) -> list[AuditEntry]:
    """Up to ``limit`` matching entries, following the cursor past short (budgeted) pages."""
    store = AuditStore(redis)
    found, cursor = await store.page(where, limit=limit)
    while cursor is not None and len(found) < limit:
        more, cursor = await store.page(where, cursor=cursor, limit=limit - len(found))
        found += more
    return found


async def _list(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    where = AuditFilter(
        portfolio=args.portfolio,
        user=args.user,
        action=args.action,
        since=args.since,
        until=args.until,
    )
    entries = await _entries(redis, where, args.limit)
    if args.json:
        print(json.dumps([json.loads(e.to_json()) for e in entries], indent=2))
        return 0
    if not entries:
        print("no entries match")
        return 0
    print(_header())
    for entry in entries:
        print(_row(entry))
    return 0


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"give a number from 1 to {MAX_LIMIT}")
    return int(value)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``audit list``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="the audit log: who did what"
    )
    actions = parser.add_subparsers(dest="action_name", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest first")
    listing.add_argument("--portfolio", help="only this portfolio's entries")
    listing.add_argument("--user", help="only this Slack user's (id or name)")
    choices = sorted({a.value for a in AuditAction} | known_subjects())
    listing.add_argument(
        "--action", choices=choices, metavar="ACTION", help="command.refused, or a subject: command"
    )
    listing.add_argument("--since", type=time_arg, help="ISO 8601, e.g. 2026-11-22T12:00:00Z")
    listing.add_argument("--until", type=time_arg, help="ISO 8601")
    listing.add_argument("--limit", type=_limit, default=50, help=f"1 to {MAX_LIMIT}")
    listing.add_argument("--json", action="store_true", help="entries as the admin API shows them")
    listing.set_defaults(func=run_command("audit", _list))
    return parser
