"""The messages of safe commands (docs/contract.md §8): the preview with its buttons, what
a click answers, the approval request and its decision, and policy refusals.

Pure functions of their data; outside text is escaped like every reply of
:mod:`bot.messages` (the Block Kit property test covers each builder here too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.messages import _USER_ID, Reply, _code, _plain
from relay.core.records import RequestRecord
from relay.glider.models import Asset, PortfolioDetail
from relay.slack.blocks import Block, context, section, slack_date

CONFIRM = "rebalance.confirm"
CANCEL = "rebalance.cancel"
LARGEST = 5  # positions shown in a preview


@dataclass(frozen=True)
class PreviewFacts:
    """What Glider and the relay say about a portfolio right now (any part may be missing)."""

    portfolio_id: str
    now: datetime
    portfolio: PortfolioDetail | None = None
    total_value_usd: Decimal | None = None
    largest: Sequence[Asset] = field(default_factory=tuple)
    notes: Sequence[str] = field(default_factory=tuple)  # why something is missing
    in_flight: RequestRecord | None = None
    cooldown_until: datetime | None = None

    def lines(self) -> list[str]:
        """The facts as escaped mrkdwn lines (preview and approval request alike)."""
        lines = [f"Portfolio {_code(self.portfolio_id)}"]
        found = self.portfolio
        if found is not None:
            name = found.portfolio_name or found.strategy_name
            if name:
                lines[0] += f": *{_plain(name)}*"
            if found.strategy_name and found.portfolio_name:
                lines.append(f"Strategy: {_plain(found.strategy_name)}")
            lines += _schedule(found, self.now)
        if self.total_value_usd is not None:
            lines.append(f"Total value: ${self.total_value_usd:,.2f}")
        if self.largest:
            held = ", ".join(_asset(a) for a in self.largest)
            lines.append(f"Largest positions: {held}")
        if self.in_flight is not None:
            lines.append(_in_flight(self.in_flight))
        if self.cooldown_until is not None and self.cooldown_until > self.now:
            lines.append(
                f":snowflake: Cooldown until {slack_date(self.cooldown_until, now=self.now)}"
            )
        lines += [f":warning: {_plain(note)}" for note in self.notes]
        return lines


def _in_flight(current: RequestRecord) -> str:
    operation = ""
    if current.operation_id:
        operation = f", Glider operation {_code(current.operation_id)}"
    return (
        f":hourglass_flowing_sand: A rebalance is in flight: {_code(current.request_id)} "
        f"({_plain(current.state.value)}{operation}); confirming answers with it instead of "
        "starting another"
    )


def _schedule(found: PortfolioDetail, now: datetime) -> list[str]:
    schedule = found.schedule
    if schedule is None:
        return ["Schedule: none"]

    def when(value: datetime | None) -> str:
        return slack_date(value, now=now) if value is not None else "never"

    return [
        f"Schedule: *{_plain(schedule.status.value)}*",
        f"Last rebalance: {when(schedule.last_rebalance_at)}",
        f"Next due: {when(schedule.next_due_at)}",
    ]


def _asset(asset: Asset) -> str:
    symbol = _plain((asset.symbol or "?").replace("`", "'"))
    value = f" ${asset.value_usd:,.2f}" if asset.value_usd is not None else ""
    return f"{symbol}{value}"


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _confirm_dialog(portfolio_id: str) -> Block:
    shown = portfolio_id[:64]
    return {
        "title": {"type": "plain_text", "text": "Rebalance now?"},
        "text": {"type": "plain_text", "text": f"This trades the assets of {shown} on chain."},
        "confirm": {"type": "plain_text", "text": "Rebalance"},
        "deny": {"type": "plain_text", "text": "Back"},
        "style": "danger",
    }


def preview(facts: PreviewFacts, token: str, approvers: Sequence[str] = ()) -> Reply:
    """The ack of ``/rebalance <id>``: the facts, Confirm (danger, with a dialog) and Cancel."""
    confirm = _button("Confirm rebalance", CONFIRM, token, "danger")
    confirm["confirm"] = _confirm_dialog(facts.portfolio_id)
    buttons = {"type": "actions", "elements": [confirm, _button("Cancel", CANCEL, token)]}
    note = "Only you can confirm. This preview expires in 10 minutes; nothing is queued until then."
    if approvers:
        roles = ", ".join(_code(r) for r in approvers)
        note += f" After you confirm, a holder of {roles} must approve it."
    lines = facts.lines()
    return Reply(
        text=f":warning: Rebalance {_code(facts.portfolio_id)}? Confirm or cancel.",
        blocks=[
            section(f":warning: Rebalance {_code(facts.portfolio_id)}? Nothing is queued yet."),
            section("\n".join(lines[:20])),
            buttons,
            context(note),
        ],
    )


def preparing(portfolio_id: str) -> Reply:
    """Glider is slow: the ack says the preview follows."""
    text = f":mag: Preparing the preview of {_code(portfolio_id)}; it follows here."
    return Reply(text=text, blocks=[section(text)])


def cancelled(portfolio_id: str) -> Reply:
    text = f":no_entry_sign: Rebalance of {_code(portfolio_id)} cancelled, nothing was queued."
    return Reply(text=text, blocks=[section(text)])


def awaiting_approval(portfolio_id: str, request_id: str, approvers: Sequence[str]) -> Reply:
    """Confirmed, and the rule asks for a second person: nothing is queued until then."""
    roles = ", ".join(_code(r) for r in approvers) or "an approver"
    text = (
        f":busts_in_silhouette: Rebalance of {_code(portfolio_id)} confirmed; waiting for "
        f"approval by a holder of {roles}. Nothing is queued until then."
    )
    return Reply(text=text, blocks=[section(text), context(f"Request {_code(request_id)}")])


def not_yours() -> Reply:
    text = ":no_entry: Only the person who asked for this rebalance can confirm or cancel it."
    return Reply(text=text, blocks=[section(text), context("Nothing was changed.")])


def stale_action() -> Reply:
    """An unknown, forged, expired or already-settled button: answered, nothing changes."""
    text = ":hourglass: This button is no longer valid (expired or unknown). Nothing was changed."
    return Reply(text=text, blocks=[section(text), context("Run the command again if needed.")])


def cannot_approve(reason: str) -> Reply:
    text = f":no_entry: {_plain(reason)} Nothing was changed."
    return Reply(text=text, blocks=[section(text)])


def unchecked_note(groups: Sequence[str]) -> str:
    """What a refusal could not check: Slack did not list these groups' members in time."""
    if not groups:
        return ""
    named = ", ".join(_code(g) for g in groups)
    return (
        f"Slack did not say in time who is in the user group {named}, so membership of it"
        " could not be checked: if you are in it, try again in a minute."
    )


def policy_refused(
    user_id: str,
    verb: str,
    portfolio_id: str,
    roles: Sequence[str],
    matched: bool,
    *,
    unchecked: Sequence[str] = (),
) -> Reply:
    """The access policy refuses: which role the command needs (nothing was done), and
    the user groups whose members could not be checked in time (``unchecked``)."""
    if matched and roles:
        need = "a holder of " + " or ".join(_code(r) for r in roles)
    elif matched:
        need = "a role this rule does not grant for it"
    else:
        need = "a rule of the access policy for this portfolio (none matches)"
    text = (
        f":no_entry: You may not {_plain(verb)} {_code(portfolio_id)}: it needs {need}. "
        "Nothing was done."
    )
    blocks = [section(text)]
    if unchecked:
        blocks.append(context(unchecked_note(unchecked)))
    blocks.append(context(f"Your id is {_code(user_id)}; ask an operator."))
    return Reply(text=text, blocks=blocks)


def _is_user(user_id: str | None) -> bool:
    return user_id is not None and _USER_ID.fullmatch(user_id) is not None
