"""Clicks on the bot's buttons (``block_actions``, docs/contract.md §8).

Confirm / Cancel on a preview, Approve / Reject on an approval request. Each click
is checked (a well-formed token, a stored request, the right person) before one
atomic step in Redis decides; anything unknown, forged or stale gets a harmless
ephemeral answer and changes nothing. Answers go to the payload's ``response_url``
(the preview itself is replaced); the approval request is updated with chat.update.

Only the click that decides changes a message or tells anyone else: a repeated or
late click (the buttons stay on screen while an update is slow or failed) is answered
to its clicker alone, ephemerally, and spends none of the requester's response_url
uses, which the outcome needs (docs/contract.md §4.6: 5 posts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import confirm_messages as cm
from bot import messages, oncall_clicks
from bot.access import Access
from bot.deadline import Deadline
from bot.handlers import Commands
from bot.messages import Reply
from bot.store_refusals import refused_write
from relay.core.approvals import approval_event, click_audit, requested_audit
from relay.core.commands import Requester
from relay.core.events import EventType
from relay.core.policy import Decision, Verb
from relay.slack import approvals as slack_approvals
from relay.slack.blocks import section
from relay.slack.response_urls import DisallowedResponseUrl
from relay.store import confirmations as store
from relay.store import keys
from relay.store.faults import describe

log = logging.getLogger(__name__)

POST_BUDGET_S = 10.0  # posting an approval request, after the click was answered
SELF_APPROVAL = "You asked for this rebalance: someone else must decide it."


class Click(BaseModel):
    """The fields of a ``block_actions`` payload a click needs, bounded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action_id: str = Field(max_length=255)
    value: str = Field(default="", max_length=2000)
    user_id: str = Field(max_length=32)
    user_name: str | None = Field(default=None, max_length=80)
    team_id: str | None = Field(default=None, max_length=32)
    response_url: str | None = Field(default=None, max_length=2000)
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    trigger_id: str | None = Field(default=None, max_length=255)
    alert_text: tuple[str, str] | None = None  # an on-call alert's headline and detail

    @classmethod
    def of(cls, body: dict[str, Any], action: dict[str, Any]) -> Click | None:
        user, team, channel = body.get("user"), body.get("team"), body.get("channel")
        user = user if isinstance(user, dict) else {}
        team = team if isinstance(team, dict) else {}
        channel = channel if isinstance(channel, dict) else {}
        container = body.get("container")
        container = container if isinstance(container, dict) else {}
        try:
            return cls(
                action_id=action.get("action_id", ""),
                value=action.get("value", ""),
                user_id=user.get("id", ""),
                user_name=user.get("username") or user.get("name"),
                team_id=team.get("id"),
                response_url=body.get("response_url"),
                channel_id=channel.get("id") or container.get("channel_id"),
                message_ts=container.get("message_ts"),
                trigger_id=body.get("trigger_id"),
                alert_text=oncall_clicks.alert_text(body.get("message")),
            )
        except (ValidationError, AttributeError):
            return None

    def person(self) -> Requester:
        return Requester(
            team_id=self.team_id,
            user_id=self.user_id,
            user_name=self.user_name,
            channel_id=self.channel_id,
        )


@dataclass(frozen=True)
class Clicks:
    """The ``block_actions`` listener: confirmations and approvals."""

    commands: Commands
    access: Access

    async def handle(self, click: Click, deadline: Deadline) -> None:
        """Answer one click by ``deadline``; never raises for anything the click carries."""
        try:
            if click.action_id in (cm.CONFIRM, cm.CANCEL):
                await self._preview_click(click, deadline)
            elif click.action_id in (slack_approvals.APPROVE, slack_approvals.REJECT):
                await self._approval_click(click, deadline)
            elif click.action_id in oncall_clicks.ACTION_IDS:
                clicks = oncall_clicks.OnCallClicks(self.commands, self._tell)
                await clicks.handle(click, deadline)
            else:
                await self._tell(click, cm.stale_action())
        except RedisError as exc:
            log.error("click not handled: store unavailable", extra={"error": describe(exc)})
            await self._tell(click, messages.click_not_handled(refused_write(exc)))

    async def _preview_click(self, click: Click, deadline: Deadline) -> None:
        pending = await store.load_pending(self._redis, click.value) if _ok(click) else None
        if pending is None:
            await self._tell(click, cm.stale_action())
            return
        if pending.command.requested_by.user_id != click.user_id:
            await self._tell(click, cm.not_yours())
            return
        choice = "confirm" if click.action_id == cm.CONFIRM else "cancel"
        start = self._approval_start(pending) if choice == "confirm" else None
        audit = click_audit(choice, pending.command)
        outcome, state = await store.click(
            self._redis,
            pending.token,
            user_id=click.user_id,
            choice=choice,
            audit=audit,
            approval=start,
        )
        log.info("preview click", extra={"outcome": outcome, "state": state, "choice": choice})
        if outcome == "missing":
            await self._tell(click, cm.stale_action())
        elif outcome == "not_requester":
            await self._tell(click, cm.not_yours())
        else:
            created = start if outcome == "done" else None  # only its click posts it
            reply = await self._preview_answer(pending, state, created, deadline)
            # The deciding click replaces the preview; a repeat must not replace what the
            # preview has become since (the ack, or the job's state posted over it).
            answer = self._replace if outcome == "done" else self._tell
            await answer(click, reply)

    async def _preview_answer(
        self,
        pending: store.Pending,
        state: str,
        created: store.ApprovalStart | None,
        deadline: Deadline,
    ) -> Reply:
        """What a Confirm or Cancel came to (the same for a repeat: the first click won);
        ``created``: the approval request this click created, to be posted."""
        command = pending.command
        if state == "cancelled":
            return cm.cancelled(command.portfolio_id)
        if pending.approval_token is not None:
            if created is not None:
                self._later(self._post_request(pending, created), "approval-request")
            approvers = self.access.approvers(command.portfolio_id)
            return cm.awaiting_approval(command.portfolio_id, command.request_id, approvers)
        # Idempotent on the fixed request id and trigger id: a repeat answers the same,
        # and queues the command if the first click's enqueue never landed.
        reply, _ = await self.commands.enqueue_reply(command, deadline)
        return reply

    def _approval_start(self, pending: store.Pending) -> store.ApprovalStart | None:
        if pending.approval_token is None:
            return None
        ttl = self.commands.settings.approval_ttl_s
        expires_ms, _ = slack_approvals.expires_at(ttl)
        fields = store.approval_fields(pending.command, pending.facts, expires_ms)
        return store.ApprovalStart(
            token=pending.approval_token,
            fields=fields,
            expires_at_ms=expires_ms,
            event=approval_event(EventType.APPROVAL_REQUESTED, pending.command),
            audit=requested_audit(pending.command),
        )

    async def _post_request(self, pending: store.Pending, start: store.ApprovalStart) -> None:
        """Post the approval request (once: only the click that created it does), after
        the click was answered: Slack's 3 s for the click do not wait for chat.postMessage."""
        web = self.commands.slack.web
        channel = self.commands.settings.approvals_slack_channel or pending.channel_id
        if web is None or channel is None:
            log.error("approval request not posted: no SLACK_BOT_TOKEN or channel")
            return
        _, expires = slack_approvals.expires_at(self.commands.settings.approval_ttl_s)
        body = slack_approvals.request_message(
            pending.command.requested_by,
            pending.facts,
            start.token,
            pending.command.request_id,
            expires,
        )
        try:
            async with asyncio.timeout(POST_BUDGET_S):
                answer = await web.chat_postMessage(channel=channel, **body)
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.error("approval request not posted", extra={"error": repr(exc)[:300]})
            return
        ts, posted_in = answer.get("ts"), answer.get("channel") or channel
        if isinstance(ts, str) and isinstance(posted_in, str):
            await store.note_message(self._redis, start.token, posted_in, ts)

    async def _approval_click(self, click: Click, deadline: Deadline) -> None:
        approval = await store.load_approval(self._redis, click.value) if _ok(click) else None
        if approval is None:
            await self._tell(click, cm.stale_action())
            return
        command = approval.command
        if approval.state != "pending":
            await self._decided(click, approval, approval.state, approval.decided_by, deadline)
            return
        if command.requested_by.user_id == click.user_id:
            await self._tell(click, cm.cannot_approve(SELF_APPROVAL))
            return
        decision = await self.access.decide(
            click.user_id, Verb.APPROVE, command.portfolio_id, within=deadline.left()
        )
        if not decision.allowed:
            await self._tell(click, self._approval_refused(decision, command.portfolio_id))
            return
        state = "approved" if click.action_id == slack_approvals.APPROVE else "rejected"
        outcome, final, by = await slack_approvals.apply_decision(
            self._redis, approval, state, click.person()
        )
        if outcome != "done":
            await self._decided(click, approval, final, by, deadline)
            return
        self._later(self._update(approval.token, final, by), "approval-update")
        if final == "approved":
            await self._queue_approved(approval, click.person(), deadline)
        else:  # rejected, or expired by this late click
            self._later(
                slack_approvals.tell_requester(self.commands.slack, approval, final, by),
                "approval-declined",
            )
        head = slack_approvals.decided_message(final, "", by, command.request_id)["text"]
        await self._tell(click, Reply(text=head, blocks=[section(head)]))

    def _approval_refused(self, decision: Decision, portfolio_id: str) -> Reply:
        roles = " or ".join(decision.needed_roles) or "an approve role"
        reason = f"Deciding this needs a holder of {roles}."
        unchecked = self.access.unchecked_groups(Verb.APPROVE, portfolio_id)
        note = cm.unchecked_note(unchecked)
        return cm.cannot_approve(f"{reason} {note}" if note else reason)

    async def _decided(
        self,
        click: Click,
        approval: store.Approval,
        state: str,
        by: Requester | None,
        deadline: Deadline,
    ) -> None:
        """A click after the decision, by anyone: only the clicker hears who decided. The
        decision's own click queued an approved command and told the requester; this one
        queues it only if that never landed (the deciding process died between the
        decision and its enqueue: the request has no record), and then tells the requester,
        who had not heard. A request with a record was queued: nothing is sent again."""
        if state == "approved" and by is not None and not await self._was_queued(approval):
            await self._queue_approved(approval, by, deadline)
        text = slack_approvals.already_decided_text(state, by)
        await self._tell(click, Reply(text=text, blocks=[section(text)]))

    async def _was_queued(self, approval: store.Approval) -> bool:
        # A record outlives its approval request (30 days against 7): none means never queued.
        return bool(await self._redis.exists(keys.request(approval.command.request_id)))

    async def _queue_approved(
        self, approval: store.Approval, approver: Requester, deadline: Deadline
    ) -> None:
        command = approval.command.model_copy(update={"approved_by": approver})
        reply, _ = await self.commands.enqueue_reply(command, deadline)
        # Answered (queued, refused, or in doubt and settled in the background): the
        # worker has nothing to pick up (relay/slack/approvals.py queue_stranded).
        await store.approval_queued(self._redis, approval.token)
        self._later(self.commands.late(command.response_url, reply), "approval-queued")

    async def _update(self, token: str, state: str, by: Requester | None) -> None:
        # Read again: where the request was posted is noted after the post.
        approval = await store.load_approval(self._redis, token)
        if approval is not None:
            await slack_approvals.update_message(self.commands.slack, approval, state, by)

    def _later(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Slack I/O after the decision: the click's HTTP answer does not wait for it."""
        self.commands.background.spawn(work, name=name)

    @property
    def _redis(self) -> Any:
        return self.commands.redis

    async def _tell(self, click: Click, reply: Reply) -> None:
        """An ephemeral answer to the clicker alone; the clicked message stays."""
        payload = reply.payload() | {"response_type": "ephemeral", "replace_original": False}
        await self._respond(click, payload)

    async def _replace(self, click: Click, reply: Reply) -> None:
        await self._respond(click, reply.payload() | {"replace_original": True})

    async def _respond(self, click: Click, payload: dict[str, Any]) -> None:
        if click.response_url is not None:
            self._later(self._post(click.response_url, payload), "click-answer")

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            await self.commands.slack.post_response(url, payload)
        except (aiohttp.ClientError, TimeoutError, DisallowedResponseUrl) as exc:
            log.warning("click answer not delivered", extra={"error": repr(exc)[:300]})


def _ok(click: Click) -> bool:
    return store.is_token(click.value)
