"""On-call alerts: which events page someone, and what the Slack and PagerDuty messages say.

Pure rendering. The alerts travel as deliveries to two internal targets
(:data:`SLACK_TARGET`, :data:`PAGERDUTY_TARGET`) with their own queues, so they
are as durable and retried as any webhook. Each alert names an "incident marker"
(the PagerDuty ``dedup_key``): a failure opens it, and the next completed
rebalance of that portfolio closes it, which is when a resolve is sent and the
Slack alert is shown resolved; a completion with no open incident sends nothing.
The Slack alert is one message per incident kept current (:mod:`relay.webhooks.alert_card`):
each Slack delivery carries the change it makes; a failure's alert carries the on-call
buttons (:mod:`relay.webhooks.alert_view`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relay.core.bounds import (
    CONTEXT_TEXT_CHARS,
    PAGERDUTY_SUMMARY_CHARS,
    SECTION_TEXT_CHARS,
    clip,
)
from relay.core.clock import iso_ms
from relay.core.events import Event, EventType
from relay.core.redact import redact
from relay.slack.blocks import escape, fit
from relay.webhooks.alert_card import AlertChange, Open, Resolve, change_json, wake_body
from relay.webhooks.policy import GONE, AttemptResult

SLACK_TARGET = "sys_oncall_slack"
PAGERDUTY_TARGET = "sys_pagerduty"
SYSTEM_TARGETS = frozenset({SLACK_TARGET, PAGERDUTY_TARGET})  # the relay's own subscriptions
SOURCE = "glider-relay"
OPEN, CLOSE = "open", "close"
STUCK_CODES = frozenset({"stuck"})


@dataclass(frozen=True, slots=True)
class OnCallRules:
    """Where alerts go: the Slack channel (if any) and whether PagerDuty is configured."""

    slack_channel: str | None = None
    pagerduty: bool = False

    @property
    def any(self) -> bool:
        return bool(self.slack_channel) or self.pagerduty


@dataclass(frozen=True, slots=True)
class Alert:
    """One message for one internal target, tied to an incident marker."""

    target: str
    body: bytes
    marker: str
    mode: str  # OPEN or CLOSE
    change: str = ""  # a Slack alert's change to its message (alert_card.AlertChange JSON)


def portfolio_key(portfolio_id: str) -> str:
    return f"{SOURCE}:portfolio:{portfolio_id}"


def subscription_key(subscription_id: str) -> str:
    return f"{SOURCE}:subscription:{subscription_id}"


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _opened(text: str, detail: str, *, actionable: bool, channel: str) -> Open:
    """An alert's opening, its texts (escaped mrkdwn) fitted to its blocks' limits."""
    return Open(
        h=fit(text, SECTION_TEXT_CHARS),
        d=fit(detail, CONTEXT_TEXT_CHARS),
        act="1" if actionable else "0",
        to=channel,
    )


def slack_alert(marker: str, mode: str, change: AlertChange) -> Alert:
    """The delivery to the on-call Slack target that makes ``change`` to ``marker``'s alert."""
    return Alert(SLACK_TARGET, wake_body(marker), marker, mode, change_json(change))


def _pagerduty(action: str, dedup_key: str, summary: str, severity: str) -> bytes:
    event: dict[str, Any] = {"event_action": action, "dedup_key": dedup_key}
    if action == "trigger":
        event["payload"] = {
            "summary": clip(summary, PAGERDUTY_SUMMARY_CHARS),
            "source": SOURCE,
            "severity": severity,
        }
    return _json(event)


def acknowledge_body(dedup_key: str) -> bytes:
    """PagerDuty Events v2 ``acknowledge`` of the incident ``dedup_key``."""
    return _pagerduty("acknowledge", dedup_key, "", "")


def resolve_body(dedup_key: str) -> bytes:
    """PagerDuty Events v2 ``resolve`` of the incident ``dedup_key``."""
    return _pagerduty("resolve", dedup_key, "", "")


def pagerduty_verdict(result: AttemptResult) -> AttemptResult:
    """PagerDuty's 400 is an invalid event: final (dead at once) with PagerDuty's reason.

    429 and 5xx stay ordinary failures, retried. The reason comes from PagerDuty's JSON
    answer (``message`` and ``errors``), cut short, since the body is kept anyway.
    """
    attempt = result.attempt
    if attempt.statusCode != 400:
        return result
    why = _pagerduty_reason(redact(attempt.responseBody or ""))  # before any cut
    error = f"PagerDuty rejected the event as invalid (not retried): {why}"[:300]
    return AttemptResult(attempt.model_copy(update={"error": error}), final=True)


def _pagerduty_reason(body: str) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:200] or "no reason given"
    if not isinstance(answer, dict):
        return "no reason given"
    parts = [str(answer.get("message") or "")]
    errors = answer.get("errors")
    if isinstance(errors, list):
        parts.extend(str(e) for e in errors[:3])
    return "; ".join(p for p in parts if p)[:200] or "no reason given"


def _is_stuck(event: Event) -> bool:
    error = event.data.error
    return error is not None and error.code in STUCK_CODES


def _failure_text(event: Event) -> tuple[str, str]:
    data = event.data
    pid = escape(data.portfolioId)
    what = "is stuck" if _is_stuck(event) else "failed"
    reason = f"{data.error.code}: {data.error.message}" if data.error else "no reason given"
    text = f":rotating_light: Rebalance of portfolio `{pid}` {what}: {escape(reason)}"
    detail = f"request `{escape(data.requestId)}`"
    if data.operationId:
        detail += f" · operation `{escape(data.operationId)}`"
    return text, detail + f" · {iso_ms(event.timestamp)}"


def event_alerts(event: Event, rules: OnCallRules) -> list[Alert]:
    """The alerts an outcome event raises: open on failure, close on the next completion."""
    if event.type not in (EventType.FAILED, EventType.COMPLETED) or not rules.any:
        return []
    marker = portfolio_key(event.data.portfolioId)
    alerts: list[Alert] = []
    if event.type is EventType.FAILED:
        text, detail = _failure_text(event)
        if rules.slack_channel:
            opened = _opened(text, detail, actionable=True, channel=rules.slack_channel)
            alerts.append(slack_alert(marker, OPEN, opened))
        if rules.pagerduty:
            summary = f"Rebalance of portfolio {event.data.portfolioId} failed"
            if event.data.error:
                summary += f": {event.data.error.code}: {event.data.error.message}"
            alerts.append(
                Alert(
                    PAGERDUTY_TARGET, _pagerduty("trigger", marker, summary, "error"), marker, OPEN
                )
            )
        return alerts
    if rules.slack_channel:
        note = f"rebalanced again (request `{escape(event.data.requestId)}`)"
        resolved = Resolve(note=fit(note, SECTION_TEXT_CHARS // 2), at=event.timestamp.isoformat())
        alerts.append(slack_alert(marker, CLOSE, resolved))
    if rules.pagerduty:
        alerts.append(Alert(PAGERDUTY_TARGET, _pagerduty("resolve", marker, "", ""), marker, CLOSE))
    return alerts


def disabled_alerts(subscription_id: str, reason: str, rules: OnCallRules) -> list[Alert]:
    """The alerts for a subscription the dispatcher disabled (410 Gone, or failing 5 days)."""
    marker = subscription_key(subscription_id)
    why = "answered 410 Gone" if reason == GONE else "failed every delivery for 5 days"
    text = f":warning: Webhook subscription `{escape(subscription_id)}` was disabled: it {why}"
    detail = "Re-enable it with PATCH /v1/subscriptions/{id}, then recover its dead deliveries."
    alerts: list[Alert] = []
    if rules.slack_channel:
        opened = _opened(text, detail, actionable=False, channel=rules.slack_channel)
        alerts.append(slack_alert(marker, OPEN, opened))
    if rules.pagerduty:
        summary = f"Webhook subscription {subscription_id} disabled: it {why}"
        alerts.append(
            Alert(PAGERDUTY_TARGET, _pagerduty("trigger", marker, summary, "warning"), marker, OPEN)
        )
    return alerts
