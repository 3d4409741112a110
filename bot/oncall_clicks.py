"""Clicks on an on-call alert (``oncall.ack``/``retry``/``pause``) and a failed card's
``job.retry`` (docs/contract.md §9).

The button's value only names the incident (or the request): the incident is looked up
in Redis and must be open. Retry and pause go through :meth:`Commands.from_button`, the
typed command's own path (policy, refusal audit, preview, approvals), as the clicker.
Each change is written to the alert (relay/webhooks/incidents.py) with the delivery that
renders it, so the alert message is updated in place by the worker, queued, versioned and
retried like any delivery, never by this process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import confirm_messages as cm
from bot.deadline import Deadline
from bot.handlers import Commands
from bot.messages import Reply
from bot.parse import PAUSE, REBALANCE
from relay.core.audit import AuditAction, AuditActor, new_entry
from relay.core.bounds import CONTEXT_TEXT_CHARS, SECTION_TEXT_CHARS, clip_mrkdwn
from relay.core.clock import iso_ms, utc_now
from relay.core.commands import Action
from relay.core.policy import Verb
from relay.core.records import RequestRecord, RequestState
from relay.slack.blocks import escape, section
from relay.store import keys
from relay.store.audit import AuditStore
from relay.store.requests import RequestStore
from relay.webhooks import alert_view, incidents
from relay.webhooks.alert_card import Seed

if TYPE_CHECKING:
    from bot.interactive import Click

log = logging.getLogger(__name__)

JOB_RETRY = "job.retry"
ACTION_IDS = (*alert_view.ACTION_IDS, JOB_RETRY)
_MARKER = re.compile(r"^glider-relay:portfolio:([A-Za-z0-9_-]{1,64})$")
_REQUEST = re.compile(r"^req_[A-Za-z0-9]{1,40}$")
_USER = re.compile(r"^[UW][A-Z0-9]{1,30}$")  # a Slack user id: safe to mention
STARTED = frozenset({"queued", "preview"})  # outcomes that count as "retry requested"

Tell = Callable[["Click", Reply], Awaitable[None]]


def _say(message: str) -> Reply:
    return Reply(text=message, blocks=[section(message)])


def resolved_answer(what: str) -> Reply:
    return _say(f":white_check_mark: This alert is already resolved: nothing to {what}.")


def already_acked(user_id: str | None, at: str) -> Reply:
    who = f"<@{escape(user_id)}>" if user_id else "someone"
    return _say(f":eyes: Already acknowledged by {who} at {at}. Nothing was sent again.")


def ack_refused(portfolio_id: str, roles: tuple[str, ...]) -> Reply:
    needed = " or ".join(f"`{escape(r)}`" for r in roles) or "the right to pause it"
    return _say(
        f":no_entry: Acknowledging the alert of `{escape(portfolio_id)}` takes {needed}"
        " (who may pause it). Nothing was changed."
    )


def already_retried(portfolio_id: str, latest: RequestRecord) -> Reply:
    who = latest.requested_by.user_id
    by = f" by <@{escape(who)}>" if who and _USER.match(who) else ""
    return _say(
        f":information_source: `{escape(portfolio_id)}` has a newer request{by}: "
        f"`{escape(latest.request_id)}` ({escape(latest.action.value)}, "
        f"*{escape(latest.state.value)}*). Nothing was started again."
    )


def acknowledged() -> Reply:
    return _say(":eyes: Acknowledged: PagerDuty is told, and the alert shows it was you.")


@dataclass(frozen=True)
class OnCallClicks:
    """The on-call alert's buttons and ``job.retry``."""

    commands: Commands
    tell: Tell

    async def handle(self, click: Click, deadline: Deadline) -> None:
        """Answer one click by ``deadline`` (the click's HTTP answer waits for it)."""
        if click.action_id == JOB_RETRY:
            await self._job_retry(click, deadline)
            return
        found = _MARKER.match(click.value)
        if found is None:
            await self.tell(click, cm.stale_action())
            return
        marker, portfolio_id = click.value, found.group(1)
        held = await self.commands.redis.get(keys.oncall_open(marker))
        if held is None:
            what = {"oncall.ack": "acknowledge", "oncall.retry": "retry"}.get(click.action_id)
            await self.tell(click, resolved_answer(what or "pause"))
            return
        if click.action_id == alert_view.ACK:
            await self._ack(click, marker, portfolio_id, deadline)
        elif click.action_id == alert_view.RETRY:
            words = portfolio_id
            await self._command(click, marker, portfolio_id, REBALANCE, words, deadline=deadline)
        else:
            words = f"{portfolio_id} paused from the on-call alert"
            await self._command(click, marker, portfolio_id, PAUSE, words, deadline=deadline)

    async def _ack(self, click: Click, marker: str, portfolio_id: str, deadline: Deadline) -> None:
        # Who may pause the portfolio may acknowledge its alert: the on-call operator's right.
        decision = await self.commands.access.decide(
            click.user_id, Verb.PAUSE, portfolio_id, within=deadline.left()
        )
        if not decision.allowed:
            log.warning(
                "refused on-call acknowledge: not allowed by the access policy",
                extra={"user_id": click.user_id, "portfolio_id": portfolio_id},
            )
            who = click.person()
            refusal = new_entry(
                AuditAction.COMMAND_REFUSED,
                AuditActor.slack(who.team_id, who.user_id, who.user_name),
                portfolio_id=portfolio_id,
                detail="oncall.ack: not allowed by the access policy",
            )
            await AuditStore(self.commands.redis).append(refusal)
            await self.tell(click, ack_refused(portfolio_id, decision.needed_roles))
            return
        ack = await incidents.acknowledge(
            self.commands.redis,
            marker,
            click.person(),
            utc_now(),
            portfolio_id=portfolio_id,
            seed=seed_of(click),
        )
        if ack.outcome == "resolved":
            await self.tell(click, resolved_answer("acknowledge"))
        elif ack.outcome == "already":
            at = iso_ms(ack.at) if ack.at else "an earlier time"
            await self.tell(click, already_acked(ack.user_id, at))
        else:
            await self.tell(click, acknowledged())

    async def _command(
        self,
        click: Click,
        marker: str,
        portfolio_id: str,
        command: str,
        words: str,
        *,
        deadline: Deadline,
    ) -> None:
        reply, outcome = await self.commands.from_button(
            click.person(),
            command,
            words,
            response_url=click.response_url,
            trigger_id=f"button:{click.trigger_id}" if click.trigger_id else None,
            deadline=deadline,
        )
        await self.tell(click, reply)
        if outcome in STARTED if command == REBALANCE else outcome == "queued":
            await incidents.note_step(
                self.commands.redis,
                marker,
                "retried" if command == REBALANCE else "paused",
                click.person(),
                utc_now(),
                portfolio_id=portfolio_id,
                detail=f"/{command} {words}: {outcome}",
                seed=seed_of(click),
            )

    async def _job_retry(self, click: Click, deadline: Deadline) -> None:
        requests = RequestStore(self.commands.redis)
        record = await requests.get(click.value) if _REQUEST.match(click.value) else None
        if record is None or record.state not in (RequestState.FAILED, RequestState.STUCK):
            await self.tell(click, cm.stale_action())
            return
        # A failed card keeps its button after someone retried from it: a late click on it
        # hears of the newer rebalance, and runs nothing again.
        newer = _newer_rebalance(record, await requests.latest(record.portfolio_id))
        if newer is not None:
            await self.tell(click, already_retried(record.portfolio_id, newer))
            return
        reply, _ = await self.commands.from_button(
            click.person(),
            REBALANCE,
            record.portfolio_id,
            response_url=click.response_url,
            trigger_id=f"button:{click.trigger_id}" if click.trigger_id else None,
            deadline=deadline,
        )
        await self.tell(click, reply)


def _newer_rebalance(failed: RequestRecord, latest: RequestRecord | None) -> RequestRecord | None:
    """``latest``, when it is a rebalance of the portfolio accepted after ``failed``."""
    if latest is None or latest.request_id == failed.request_id:
        return None
    if latest.action is not Action.REBALANCE or latest.accepted_at < failed.accepted_at:
        return None
    return latest


def seed_of(click: Click) -> Seed | None:
    """The clicked alert message, for an alert posted before alerts were kept in Redis."""
    if not (click.channel_id and click.message_ts and click.alert_text):
        return None
    headline, detail = click.alert_text
    return Seed(h=headline, d=detail, ch=click.channel_id[:200], ts=click.message_ts[:200])


def alert_text(message: object) -> tuple[str, str] | None:
    """The headline and detail of a clicked alert (its first section and context), if any."""
    if not isinstance(message, dict):
        return None
    blocks = message.get("blocks")
    try:
        headline = blocks[0]["text"]["text"]  # type: ignore[index]
        detail = blocks[1]["elements"][0]["text"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return None
    if isinstance(headline, str) and isinstance(detail, str):
        # The alert's mrkdwn, escaped when it was built: cut without splitting an entity.
        return clip_mrkdwn(headline, SECTION_TEXT_CHARS), clip_mrkdwn(detail, CONTEXT_TEXT_CHARS)
    return None
