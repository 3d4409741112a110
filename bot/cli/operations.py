"""``glider-relay operations ...`` and ``glider-relay dead-letters ...``: straight to Redis.

"What happened to my command?": the tracked requests with their timeline, and what
the workers gave up on. Each calls the same function as its admin route
(:mod:`relay.admin.operations`, :mod:`relay.admin.timeline`, :mod:`relay.store.dead_letters`)
and refuses in the admin API's words.
"""

from __future__ import annotations

import argparse
from typing import Any

import redis.asyncio as aioredis

from bot.cli.common import (
    fail,
    filters_text,
    limit_arg,
    print_json,
    print_table,
    run_command,
    when,
)
from relay.admin.dead_letters import missing
from relay.admin.operations import OperationView
from relay.admin.timeline import timeline
from relay.core.commands import PORTFOLIO_ID_RE
from relay.core.records import RequestRecord, RequestState
from relay.settings import Settings
from relay.store import dead_letters
from relay.store.dead_letters import DeadStream
from relay.store.requests import RequestStore

_OPERATION_HEADER = [
    "REQUEST",
    "ACTION",
    "PORTFOLIO",
    "STATE",
    "ACCEPTED",
    "FINISHED",
    "RETRY AT",
    "REQUESTER TOLD",
]


def _told(record: RequestRecord) -> str:
    if record.reply_status == "sent":
        return f"yes ({record.reply_kind}, {record.reply_via})"
    if record.reply_status is not None:
        return f"NO: replay {record.reply_dead}"
    return "not yet"


def _operation_row(record: RequestRecord) -> list[str]:
    return [
        record.request_id,
        record.action.value,
        record.portfolio_id,
        record.state.value,
        when(record.accepted_at),
        when(record.finished_at),
        when(record.retry_at),
        _told(record),
    ]


async def _list(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    if args.portfolio is not None and not PORTFOLIO_ID_RE.fullmatch(args.portfolio):
        return fail("portfolio must be 1-64 letters, digits, _ or -")
    state = RequestState(args.state) if args.state else None
    records, _ = await RequestStore(redis).page(
        state=state, portfolio=args.portfolio, cursor=None, limit=args.limit
    )
    if args.json:
        print_json([OperationView.of(r).model_dump(mode="json") for r in records])
        return 0
    empty = "no operations match" + filters_text(state=args.state, portfolio=args.portfolio)
    print_table(_OPERATION_HEADER, [_operation_row(r) for r in records], empty=empty)
    return 0


def _show_lines(view: OperationView) -> list[str]:
    error = f"{view.error.code}: {view.error.message}" if view.error else "-"
    who = view.requestedBy.userName or view.requestedBy.userId or "-"
    return [
        f"request      {view.requestId}",
        f"action       {view.action} of {view.portfolioId} by {who}",
        f"state        {view.state.value}",
        f"operation    {view.operationId or '-'} ({view.operationState or '-'})",
        f"accepted     {when(view.acceptedAt)}",
        f"submitted    {when(view.submittedAt)}",
        f"finished     {when(view.finishedAt)}",
        f"retry at     {when(view.retryAt)}",
        f"error        {error}",
    ]


async def _show(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    record = await RequestStore(redis).get(args.request_id)
    if record is None:
        return fail(f"no request {args.request_id}")
    view, steps = OperationView.of(record), await timeline(redis, record)
    if args.json:
        print_json({**view.model_dump(mode="json"), "timeline": steps.model_dump(mode="json")})
        return 0
    print("\n".join(_show_lines(view)))
    print(f"requester    {_told(record)}")
    print("\ntimeline")
    rows = [
        [
            when(e.at),
            e.kind,
            e.summary,
            e.id or "",
            when(e.nextAttemptAt) if e.nextAttemptAt else "",
        ]
        for e in steps.entries
    ]
    print_table(["AT", "KIND", "WHAT", "ID", "NEXT ATTEMPT"], rows, empty="nothing recorded")
    return 0


async def _dead_list(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    stream = DeadStream(args.stream) if args.stream else None
    letters, _ = await dead_letters.page(redis, stream=stream, cursor=None, limit=args.limit)
    if args.json:
        print_json([d.model_dump(mode="json") for d in letters])
        return 0
    rows = [
        [
            d.id,
            d.requestId or "-",
            d.kind or "-",
            when(d.deadAt),
            str(d.deliveries) if d.deliveries is not None else "-",
            d.reason,
        ]
        for d in letters
    ]
    header = ["ID", "REQUEST", "KIND", "DEAD AT", "DELIVERIES", "REASON"]
    print_table(header, rows, empty="no dead letters" + filters_text(stream=args.stream))
    return 0


async def _dead_replay(redis: aioredis.Redis, settings: Settings, args: argparse.Namespace) -> int:
    try:
        entry_id = await dead_letters.replay(redis, args.id)
    except dead_letters.RequestFinal as exc:
        return fail(str(exc))
    if entry_id is None:
        return fail(missing(args.id))
    print(f"queued {args.id} again (entry {entry_id}); the workers take it next")
    return 0


def add_operations_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``operations list|show``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "operations", help="tracked commands and what happened to them"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="tracked commands, newest first")
    listing.add_argument("--state", choices=[s.value for s in RequestState], help="only this state")
    listing.add_argument("--portfolio", help="only this portfolio id")
    listing.add_argument("--limit", type=limit_arg, default=50, help="at most this many")
    listing.add_argument("--json", action="store_true", help="as the admin API's JSON")
    listing.set_defaults(func=run_command("operations", _list))
    show = actions.add_parser("show", help="one command with its timeline")
    show.add_argument("request_id", metavar="REQUEST_ID", help="the req_... id the ack named")
    show.add_argument("--json", action="store_true", help="as the admin API's JSON")
    show.set_defaults(func=run_command("operations", _show))
    return parser


def add_dead_letters_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``dead-letters list|replay``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dead-letters", help="what the workers gave up on, and sending it again"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest first, with the reason")
    listing.add_argument(
        "--stream", choices=[s.value for s in DeadStream], help="only this stream (default: both)"
    )
    listing.add_argument("--limit", type=limit_arg, default=50, help="at most this many")
    listing.add_argument("--json", action="store_true", help="as the admin API's JSON")
    listing.set_defaults(func=run_command("dead-letters", _dead_list))
    replay = actions.add_parser("replay", help="put a dead letter back on its stream")
    replay.add_argument("id", metavar="ID", help="the dead letter's id, as the list shows it")
    replay.set_defaults(func=run_command("dead-letters", _dead_replay))
    return parser
