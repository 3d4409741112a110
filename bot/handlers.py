"""What each slash command does, from Slack's payload to the reply that becomes the ack.

Order matters: parse (usage replies need no permission), then authorise, and only
then touch Redis (a refusal only appends its ``command.refused`` audit entry). The ack
is returned after Redis has answered, so "queued" is never said of a command that is
not in Redis, and "nothing was done" only when that is certain: the write never left
(no connection), or Redis refused it as out of memory or read-only (the script did
not run: bot/store_refusals.py). A write that got no answer may still run, so its ack
says "could not confirm; checking" and bot/settle.py tells the requester the truth later.
Every step draws on one deadline per request (bot/deadline.py), so the ack is in time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, field_validator
from redis.exceptions import RedisError

from bot import confirm_messages, messages
from bot.access import Access
from bot.background import Background
from bot.deadline import Deadline
from bot.enqueuer import GroupEnqueuer
from bot.list_command import answer_list
from bot.listing import Lister
from bot.messages import Reply
from bot.parse import (
    ALL_FORMS,
    FORMS,
    Help,
    Pause,
    PortfolioList,
    Rebalance,
    Resume,
    Status,
    UsageError,
    parse,
)
from bot.preview import gather_facts
from bot.settle import OutcomeChecker
from bot.status import SLOW_GLIDER_S, answer_status
from bot.store_refusals import WriteRefused, refused_write
from relay import tracing
from relay.core.audit import AuditAction, AuditActor, new_entry
from relay.core.bounds import clip_mrkdwn_lines
from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.ids import new_id
from relay.core.policy import Decision, Verb
from relay.glider.client import GliderClient
from relay.metrics import COMMANDS_TOTAL
from relay.settings import Settings
from relay.slack.client import SlackApi
from relay.slack.response_urls import DisallowedResponseUrl
from relay.store.audit import AuditStore
from relay.store.confirmations import Pending, new_token, save_pending
from relay.store.queue import (
    EnqueueNotSent,
    EnqueueOutcomeUnknown,
    EnqueueResult,
    EnqueueStatus,
)
from relay.store.requests import RequestStore

log = logging.getLogger(__name__)

# In-flight record lookups for the ack; the enqueue's own budget is bot/enqueuer.py's.
LOOKUP_BUDGET_S = 1.0
AUDIT_BUDGET_S = 0.5  # a refusal's audit entry, appended before its ack
_ACTIONS = {Rebalance: Action.REBALANCE, Pause: Action.PAUSE, Resume: Action.RESUME}
_VERBS = {
    Rebalance: Verb.REBALANCE,
    Pause: Verb.PAUSE,
    Resume: Verb.RESUME,
    Status: Verb.STATUS,
}
FACTS_CHARS = 2000  # the preview's facts kept for the approval request (whole lines)
Command = Rebalance | Pause | Resume | Status


class SlashCommand(BaseModel):
    """The fields of Slack's slash-command payload the bot uses."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str = ""
    text: str = ""
    team_id: str | None = None
    user_id: str = ""
    user_name: str | None = None
    channel_id: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None

    @field_validator("command")
    @classmethod
    def _lower_case(cls, command: str) -> str:
        # Command names are case-insensitive (docs/contract.md §4.2): counted, audited
        # and parsed under the one spelling.
        return command.lower()

    def requester(self) -> Requester:
        return Requester(
            team_id=self.team_id,
            user_id=self.user_id,
            user_name=self.user_name,
            channel_id=self.channel_id,
        )


@cache
def _counter(name: str, outcome: str) -> Counter:
    # labels() locks and builds its key on every call; the label pairs are few and fixed.
    return COMMANDS_TOTAL.labels(command=name, outcome=outcome)


def _count(command: str, outcome: str) -> None:
    """Count a command by outcome; unknown command names share one label."""
    _counter(command if command in FORMS else "other", outcome).inc()


def is_allowed(user_id: str, allowed: frozenset[str]) -> bool:
    """``BOT_ALLOWED_USERS``: ``*`` allows everyone, unset allows nobody."""
    return bool(user_id) and ("*" in allowed or user_id in allowed)


def _refusal_detail(decision: Decision, *, policy_file: bool) -> str:
    """Why a command was refused, for its audit entry (the reply says the same in words)."""
    if not policy_file:
        return "not allowed: the user is not in BOT_ALLOWED_USERS"
    if not decision.matched:
        return "not allowed: no policy rule matches this portfolio"
    return f"not allowed: needs role {' or '.join(decision.needed_roles)}"


def to_queued(
    slash: SlashCommand, parsed: Rebalance | Pause | Resume, traceparent: str | None = None
) -> QueuedCommand:
    """The stream entry for an accepted command, under a fresh ``req_`` id, in the trace
    ``traceparent`` names (the Slack request's)."""
    return QueuedCommand(
        request_id=new_id("req"),
        action=_ACTIONS[type(parsed)],
        portfolio_id=parsed.portfolio_id,
        reason=parsed.reason if isinstance(parsed, Pause) else None,
        requested_by=slash.requester(),
        response_url=slash.response_url,
        trigger_id=slash.trigger_id,
        traceparent=traceparent,
    )


@dataclass(frozen=True)
class Commands:
    """The slash-command listener and what it needs."""

    settings: Settings
    redis: aioredis.Redis
    glider: GliderClient | None
    slack: SlackApi
    background: Background
    enqueuer: GroupEnqueuer
    checker: OutcomeChecker
    access: Access
    status_patience: float = SLOW_GLIDER_S
    lister: Lister | None = None  # the portfolio list (/rebalance list, App Home)

    async def reply(self, payload: dict[str, Any], deadline: Deadline | None = None) -> Reply:
        """The ack for one slash command (and, for a slow status, a late reply), ready by
        ``deadline`` (by default the ack budget from now)."""
        slash = SlashCommand.model_validate(payload)
        reply, _ = await self.run(slash, deadline or Deadline.within())
        return reply

    async def from_button(
        self,
        person: Requester,
        command: str,
        text: str,
        *,
        response_url: str | None,
        trigger_id: str | None,
        deadline: Deadline,
    ) -> tuple[Reply, str]:
        """A command started from a button (``job.retry``, ``oncall.retry``/``pause``), as
        the clicking user: the typed command's very path (parse, policy, audit of a
        refusal, preview, approvals, enqueue), within the click's ``deadline``. The reply
        and its outcome label."""
        slash = SlashCommand(
            command=command,
            text=text,
            team_id=person.team_id,
            user_id=person.user_id,
            user_name=person.user_name,
            channel_id=person.channel_id,
            response_url=response_url,
            trigger_id=trigger_id,
        )
        return await self.run(slash, deadline)

    async def run(self, slash: SlashCommand, deadline: Deadline) -> tuple[Reply, str]:
        """One command: its reply, ready by ``deadline``, and the outcome it was counted
        under. Every step waits at most for what is left of the deadline, never for a
        budget of its own added after the others'."""
        count = partial(_count, slash.command)
        try:
            parsed = parse(slash.command, slash.text)
        except UsageError as exc:
            count("usage")
            return messages.usage(exc.forms, exc.message), "usage"
        if isinstance(parsed, Help | PortfolioList):
            return await self._no_portfolio(parsed, slash, deadline)
        decision = await self.access.decide(
            slash.user_id, _VERBS[type(parsed)], parsed.portfolio_id, within=deadline.left()
        )
        if not decision.allowed:
            count("unauthorized")
            log.warning(
                "refused Slack request: not allowed by the access policy",
                extra={
                    "user_id": slash.user_id,
                    "command": slash.command,
                    "reason": "unauthorized",
                },
            )
            detail = _refusal_detail(
                decision, policy_file=self.settings.relay_policy_file is not None
            )
            await self._audit_refusal(slash, parsed.portfolio_id, detail, deadline)
            return self._refusal(slash.user_id, parsed, decision), "unauthorized"
        if isinstance(parsed, Status):
            count("status")
            status = await answer_status(
                parsed.portfolio_id,
                redis=self.redis,
                glider=self.glider,
                late=partial(post_late, self.slack, slash.response_url),
                background=self.background,
                patience=deadline.cap(self.status_patience),
            )
            return status, "status"
        command = to_queued(slash, parsed, tracing.current_header() or None)
        # A rule that needs a second approver always goes through the preview, whatever
        # BOT_CONFIRM_REBALANCE says: the confirmation is what posts the approval request.
        confirm = self.settings.bot_confirm_rebalance or decision.require_approval
        if isinstance(parsed, Rebalance) and confirm:
            count("preview")
            preview = await self._preview(command, decision.require_approval, deadline)
            return preview, "preview"
        reply, outcome = await self._enqueue(command, deadline)
        count(outcome)
        return reply, outcome

    async def _no_portfolio(
        self, parsed: Help | PortfolioList, slash: SlashCommand, deadline: Deadline
    ) -> tuple[Reply, str]:
        """Help, and /rebalance list: each row there is filtered by the status right."""
        if isinstance(parsed, Help):
            _count(slash.command, "help")
            return messages.usage(ALL_FORMS), "help"  # help lists every command
        _count(slash.command, "list")
        listed = await answer_list(
            parsed.page,
            slash.user_id,
            lister=self.lister or Lister(self.redis, self.glider),
            access=self.access,
            late=partial(post_late, self.slack, slash.response_url),
            background=self.background,
            patience=deadline.cap(self.status_patience),
        )
        return listed, "list"

    def _refusal(self, user_id: str, parsed: Command, decision: Decision) -> Reply:
        if not self.access.policy.from_file:
            return messages.refused(user_id, self.settings.allowed_users)
        verb = _VERBS[type(parsed)]
        # Said when a user group the refusal rests on was not resolved in time.
        unchecked = self.access.unchecked_groups(verb, parsed.portfolio_id)
        return confirm_messages.policy_refused(
            user_id,
            verb.value,
            parsed.portfolio_id,
            decision.needed_roles,
            decision.matched,
            unchecked=unchecked,
        )

    async def _preview(
        self, command: QueuedCommand, needs_approval: bool, deadline: Deadline
    ) -> Reply:
        """The preview ack (late through response_url when Glider is slow)."""
        token = new_token()
        # The click queues this very command: fixed request id, trigger id of the token.
        command = command.model_copy(update={"trigger_id": f"confirm:{token}"})
        approvers = self.access.approvers(command.portfolio_id) if needs_approval else ()
        build = asyncio.ensure_future(self._build_preview(command, token, approvers))
        done, _ = await asyncio.wait({build}, timeout=deadline.cap(self.status_patience))
        if build in done:
            return build.result()

        async def follow() -> None:
            await post_late(self.slack, command.response_url, await build)

        self.background.spawn(follow(), name=f"preview:{command.portfolio_id}")
        return confirm_messages.preparing(command.portfolio_id)

    async def _build_preview(
        self, command: QueuedCommand, token: str, approvers: tuple[str, ...]
    ) -> Reply:
        facts = await gather_facts(command.portfolio_id, redis=self.redis, glider=self.glider)
        pending = Pending(
            token=token,
            command=command,
            channel_id=command.requested_by.channel_id,
            approval_token=new_token() if approvers else None,
            facts=clip_mrkdwn_lines(facts.lines(), FACTS_CHARS),
        )
        try:
            async with asyncio.timeout(LOOKUP_BUDGET_S):
                await save_pending(self.redis, pending)
        except (RedisError, TimeoutError) as exc:
            log.error("preview not stored", extra={"error": repr(exc)})
            return messages.not_queued()
        return confirm_messages.preview(facts, token, approvers)

    async def enqueue_reply(self, command: QueuedCommand, deadline: Deadline) -> tuple[Reply, str]:
        """Queue ``command`` (idempotent on its ids) by ``deadline``, and the reply that says
        what happened."""
        return await self._enqueue(command, deadline)

    async def late(self, response_url: str | None, reply: Reply) -> None:
        """A reply after the ack, through ``response_url``."""
        await post_late(self.slack, response_url, reply)

    async def _enqueue(self, command: QueuedCommand, deadline: Deadline) -> tuple[Reply, str]:
        """The ack and the outcome label (queued, duplicate, inflight, redis_unavailable,
        store_full, store_read_only or unknown)."""
        context = {"request_id": command.request_id, "portfolio_id": command.portfolio_id}
        try:
            with tracing.span(
                "enqueue",
                kind=tracing.SpanKind.PRODUCER,
                attributes={f"glider_relay.{name}": value for name, value in context.items()},
            ):
                result = await self.enqueuer.enqueue(command, within=deadline.left())
        except EnqueueNotSent as exc:
            log.error("could not queue command", extra={**context, "error": repr(exc)})
            return messages.not_queued(), "redis_unavailable"
        except EnqueueOutcomeUnknown as exc:
            log.error("command may or may not be queued", extra={**context, "error": repr(exc)})
            return self._unknown(command), "unknown"
        except RedisError as exc:
            refused = refused_write(exc)
            if refused is None:  # an error reply that does not prove the script did nothing
                log.error("command may or may not be queued", extra={**context, "error": repr(exc)})
                return self._unknown(command), "unknown"
            log.error(
                "could not queue command: Redis refused the write (%s)",
                refused.value,
                extra={**context, "error": repr(exc)},
            )
            return self._refused_write(command, refused), refused.value
        if log.isEnabledFor(logging.INFO):
            # Written on the next turn of the loop, after the ack has gone out: formatting
            # the JSON line is not needed for the ack (the context of the call is kept).
            asyncio.get_running_loop().call_soon(
                partial(
                    log.info,
                    "command %s",
                    result.status.value,
                    extra={
                        **context,
                        "action": command.action.value,
                        "existing": result.request_id,
                    },
                )
            )
        if result.status is EnqueueStatus.INFLIGHT:
            await self._audit_refusal(
                command,
                command.portfolio_id,
                f"in flight: {result.request_id} still runs",
                deadline,
            )
        return await self._answer(command, result, deadline), result.status.value

    async def _audit_refusal(
        self,
        source: SlashCommand | QueuedCommand,
        portfolio_id: str,
        why: str,
        deadline: Deadline,
    ) -> None:
        """Append ``command.refused`` on its own (a refusal changes nothing else), within a
        budget: the ack never waits long for it, and a failure is logged, not answered."""
        if isinstance(source, QueuedCommand):
            who, what = source.requested_by, source.action.value
        else:
            who, what = source.requester(), f"{source.command} {source.text}".strip()
        entry = new_entry(
            AuditAction.COMMAND_REFUSED,
            AuditActor.slack(who.team_id, who.user_id, who.user_name),
            portfolio_id=portfolio_id,
            detail=f"{what}: {why}",
        )
        try:
            async with asyncio.timeout(deadline.cap(AUDIT_BUDGET_S)):
                await AuditStore(self.redis).append(entry)
        except (RedisError, TimeoutError) as exc:
            log.error(
                "refusal not audited", extra={"portfolio_id": portfolio_id, "error": repr(exc)}
            )

    def _refused_write(self, command: QueuedCommand, refused: WriteRefused) -> Reply:
        if refused is WriteRefused.READ_ONLY:
            return messages.store_read_only(command.action, command.portfolio_id)
        return messages.store_full()

    def _unknown(self, command: QueuedCommand) -> Reply:
        if self.checker.check(command):
            return messages.outcome_unknown(
                command.action, command.portfolio_id, command.request_id
            )
        log.error("too many unknown enqueues to check", extra={"request_id": command.request_id})
        return messages.still_unknown(command.action, command.portfolio_id)

    async def _answer(
        self, command: QueuedCommand, result: EnqueueResult, deadline: Deadline
    ) -> Reply:
        if result.status is EnqueueStatus.QUEUED:
            return messages.queued(
                command.action, command.portfolio_id, result.request_id, command.reason
            )
        if result.status is EnqueueStatus.DUPLICATE:
            return messages.already_queued(command.portfolio_id, result.request_id)
        if result.status is EnqueueStatus.ABANDONED:  # only a late copy can meet its tombstone
            return messages.settled_not_queued(command.action, command.portfolio_id)
        try:
            async with asyncio.timeout(deadline.cap(LOOKUP_BUDGET_S)):
                record = await RequestStore(self.redis).get(result.request_id)
        except (RedisError, TimeoutError):
            record = None
        return messages.in_flight(command.portfolio_id, result.request_id, record)


async def post_late(slack: SlackApi, response_url: str | None, reply: Reply) -> None:
    """A reply after the ack, through the command's response_url (late status, settled
    outcomes): every web-side POST to a response_url goes through here; the Slack
    client refuses a host outside SLACK_RESPONSE_URL_HOSTS."""
    if response_url is None:
        log.warning("late reply dropped: the command had no response_url")
        return
    status: int | None = None
    error: str | None = None
    try:
        status = await slack.post_response(response_url, reply.payload())
    except (aiohttp.ClientError, TimeoutError, DisallowedResponseUrl) as exc:
        error = repr(exc)
    if status is None or not 200 <= status < 300:
        log.error("late reply not delivered", extra={"status": status, "error": error})
