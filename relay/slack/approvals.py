"""Approval requests in Slack (docs/contract.md §8): their messages, and applying a decision.

Shared by the web process (a click on Approve / Reject) and the worker (expiry at the
deadline, whether or not anyone clicked; and :func:`queue_stranded`, the approved
commands whose web process stopped between the decision and its enqueue):
:func:`apply_decision` is the one atomic step in Redis, and :func:`update_message` the
update, in place, of the posted request.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from slack_sdk.errors import SlackApiError, SlackClientError

from relay.core.approvals import approval_event, decision_audit
from relay.core.commands import Requester
from relay.core.events import EventType
from relay.slack.blocks import Block, context, escape, message, section, slack_date
from relay.slack.client import SlackApi
from relay.slack.response_urls import DisallowedResponseUrl
from relay.store import confirmations as store
from relay.store import keys
from relay.store.queue import EnqueueStatus, enqueue

log = logging.getLogger(__name__)

APPROVE = "approval.approve"
REJECT = "approval.reject"
_USER = re.compile(r"^[UW][A-Z0-9]{1,30}$")
# An approved command's enqueue answers within the click's ack (2.5 s); one still not
# known to have run this long after its decision was left behind by a process that stopped.
STRANDED_AFTER_MS = 60_000


def _code(value: str) -> str:
    return "`" + escape(value.replace("`", "'")) + "`"


def _mention(person: Requester | None) -> str | None:
    user = person.user_id if person else None
    return f"<@{user}>" if user and _USER.match(user) else None


def _button(text: str, action_id: str, value: str, style: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
        "style": style,
    }


def request_message(
    requester: Requester, facts: str, token: str, request_id: str, expires: datetime
) -> dict[str, Any]:
    """The request: who asks, the preview's facts (escaped when built), Approve and Reject."""
    who = _mention(requester) or "Someone"
    head = f":busts_in_silhouette: {who} asks for approval of a rebalance."
    buttons = {
        "type": "actions",
        "elements": [
            _button("Approve", APPROVE, token, "primary"),
            _button("Reject", REJECT, token, "danger"),
        ],
    }
    blocks = [
        section(head),
        section(facts or "-"),
        buttons,
        context(f"Request {_code(request_id)} · expires {slack_date(expires)}"),
    ]
    return message(head, blocks)


def decided_message(
    state: str, facts: str, decider: Requester | None, request_id: str
) -> dict[str, Any]:
    """The request updated in place with its decision; no buttons are left on it."""
    who = _mention(decider)
    by = f" by {who}" if who else ""
    head = {
        "approved": f":white_check_mark: Approved{by}: queued as {_code(request_id)}.",
        "rejected": f":x: Rejected{by}: nothing was queued.",
        "expired": ":hourglass: Expired before anyone decided: nothing was queued.",
    }.get(state, f"Decided: {escape(state)}.")
    return message(head, [section(head), section(facts or "-")])


def already_decided_text(state: str, decider: Requester | None) -> str:
    who = _mention(decider)
    return f":information_source: This request was already {escape(state)}" + (
        f" by {who}." if who else "."
    )


def _decision(state: str, approval: store.Approval, decider: Requester | None) -> store.Decision:
    command = approval.command
    kind = EventType.APPROVED if state == "approved" else EventType.DECLINED
    expiry_id, _, expiry_body = approval_event(EventType.DECLINED, command, None, "expired")
    return store.Decision(
        state=state,
        decider=decider,
        event=approval_event(kind, command, decider, state),
        audit=decision_audit(state, command, decider),
        expiry_event=(expiry_id, expiry_body),
        expiry_audit=decision_audit("expired", command, None),
    )


async def apply_decision(
    redis: aioredis.Redis,
    approval: store.Approval,
    state: str,
    decider: Requester | None,
) -> tuple[str, str, Requester | None]:
    """Decide (first decision wins, atomically, with its event and audit entry).

    Returns (outcome, state, who decided) as :func:`relay.store.confirmations.decide`;
    on ``done`` the caller updates the posted request (:func:`update_message`).
    """
    now_ms = int(time.time() * 1000)
    result = await store.decide(redis, approval.token, _decision(state, approval, decider), now_ms)
    outcome, final, by = result
    if outcome == "done":
        log.info(
            "approval %s",
            final,
            extra={"request_id": approval.command.request_id, "decided_by": decider_id(by)},
        )
    return result


def decider_id(person: Requester | None) -> str | None:
    return person.user_id if person else None


async def update_message(
    slack: SlackApi, approval: store.Approval, state: str, decider: Requester | None
) -> None:
    """chat.update of the posted request; a failure is logged (the decision stands)."""
    if slack.web is None or approval.channel_id is None or approval.message_ts is None:
        log.warning("approval message not updated: not posted", extra={"state": state})
        return
    body = decided_message(state, approval.facts, decider, approval.command.request_id)
    try:
        await slack.web.chat_update(channel=approval.channel_id, ts=approval.message_ts, **body)
    except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        log.error("approval message not updated", extra={"error": repr(exc)[:300]})


async def tell_requester(
    slack: SlackApi, approval: store.Approval, state: str, decider: Requester | None
) -> None:
    """The requester hears a rejection or expiry on the command's response_url (while valid)."""
    url = approval.command.response_url
    if url is None:
        return
    body = decided_message(state, approval.facts, decider, approval.command.request_id)
    try:
        await slack.post_response(url, {**body, "response_type": "ephemeral"})
    except (aiohttp.ClientError, TimeoutError, DisallowedResponseUrl) as exc:
        log.info("requester not told of the decision", extra={"error": repr(exc)[:300]})


async def expire_due(redis: aioredis.Redis, slack: SlackApi, limit: int = 100) -> int:
    """Expire every approval request past its deadline; returns how many expired now."""
    now_ms = int(time.time() * 1000)
    expired = 0
    for token in await store.due_approvals(redis, now_ms, limit):
        approval = await store.load_approval(redis, token)
        if approval is None:
            await redis.zrem(keys.APPROVALS_DUE, token)
            continue
        outcome, final, by = await apply_decision(redis, approval, "expired", None)
        if outcome == "done":
            expired += 1
            await update_message(slack, approval, final, by)
            await tell_requester(slack, approval, final, by)
    return expired


async def queue_stranded(
    redis: aioredis.Redis, *, now_ms: int | None = None, limit: int = 100
) -> int:
    """Queue the approved commands whose deciding process stopped before queueing them (a
    crash between the decision and its enqueue); how many were queued now. Idempotent: a
    command with a record was queued, and the enqueue itself is keyed by its request id."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    queued = 0
    for token in await store.stranded_approvals(redis, now - STRANDED_AFTER_MS, limit):
        approval = await store.load_approval(redis, token)
        if approval is not None and approval.state == "approved":
            queued += await _queue_left_behind(redis, approval)
        await store.approval_queued(redis, token)
    return queued


async def _queue_left_behind(redis: aioredis.Redis, approval: store.Approval) -> int:
    command = approval.command.model_copy(update={"approved_by": approval.decided_by})
    if await redis.exists(keys.request(command.request_id)):
        return 0  # queued after all (its answer was what went missing)
    result = await enqueue(redis, command)
    extra = {"request_id": command.request_id, "portfolio_id": command.portfolio_id}
    if result.status is EnqueueStatus.QUEUED:
        log.warning(
            "approved rebalance queued by the worker: the process that approved it stopped"
            " before queueing it",
            extra=extra,
        )
        return 1
    log.warning(
        "approved rebalance left behind not queued: %s (request %s)",
        result.status.value,
        result.request_id,
        extra=extra,
    )
    return 0


def expires_at(ttl_s: int) -> tuple[int, datetime]:
    """The deadline ``ttl_s`` from now, in ms and as a time."""
    ms = int(time.time() * 1000) + ttl_s * 1000
    return ms, datetime.fromtimestamp(ms / 1000, UTC)
