"""Reply rendering: what each reply says, and that untrusted text is always escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import messages
from bot.messages import Reply, StatusView
from bot.parse import FORMS
from relay.core.commands import Action, Requester
from relay.core.records import RequestRecord, RequestState
from relay.glider.models import PortfolioDetail

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INJECTIONS = ["<!channel>", "<@U1>", "<http://x|y>", "a & b"]
ESCAPED = ["&lt;!channel&gt;", "&lt;@U1&gt;", "&lt;http://x|y&gt;", "a &amp; b"]


def _texts(reply: Reply) -> str:
    """Every mrkdwn string of a reply (fallback text and blocks), joined."""
    parts = [reply.text]
    for block in reply.blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [element["text"] for element in block.get("elements", [])]
    return "\n".join(parts)


def _record(**fields: object) -> RequestRecord:
    base: dict[str, object] = {
        "request_id": "req_01JX",
        "action": Action.REBALANCE,
        "portfolio_id": "pf_1",
        "state": RequestState.SUBMITTED,
        "requested_by": Requester(team_id="T1", user_id="U1", user_name="alice"),
        "accepted_at": NOW - timedelta(minutes=5),
        "updated_at": NOW - timedelta(minutes=4),
        "operation_id": "rebalance:pf_1:pf_1%3Amanual%3Areq_01JX",
    }
    return RequestRecord.model_validate(base | fields)


def _portfolio(**schedule: object) -> PortfolioDetail:
    return PortfolioDetail.model_validate(
        {
            "portfolioId": "pf_1",
            "portfolioName": "Alice Yield",
            "schedule": {
                "status": "active",
                "frequency": "daily",
                "lastRebalanceAt": "2026-11-22T09:00:00.000Z",
                "nextDueAt": "2026-11-23T09:00:00.000Z",
            }
            | schedule,
        }
    )


def test_queued_names_portfolio_request_and_is_ephemeral() -> None:
    """The ack is ephemeral and names the portfolio and the request id."""
    reply = messages.queued(Action.REBALANCE, "pf_1", "req_01JX", None)
    assert reply.response_type == "ephemeral"
    assert "a rebalance of `pf_1`" in _texts(reply)
    assert "`req_01JX`" in reply.text


@pytest.mark.parametrize(("raw", "escaped"), list(zip(INJECTIONS, ESCAPED, strict=True)))
def test_queued_pause_escapes_the_reason(raw: str, escaped: str) -> None:
    """A pause reason with mentions, links or & is shown escaped."""
    reply = messages.queued(Action.PAUSE, "pf_1", "req_1", f"because {raw}")
    texts = _texts(reply)
    assert f"Reason: because {escaped}" in texts
    assert raw not in texts


def test_in_flight_names_request_and_operation() -> None:
    """The in-flight answer names the running request and its Glider operation."""
    reply = messages.in_flight("pf_1", "req_01JX", _record())
    texts = _texts(reply)
    assert "`req_01JX` (submitted)" in texts
    assert "Glider operation `rebalance:pf_1:pf_1%3Amanual%3Areq_01JX`" in texts
    assert "Nothing new was queued" in texts


def test_in_flight_before_submission_says_not_yet_sent() -> None:
    """An in-flight request Glider has not seen yet says so."""
    texts = _texts(messages.in_flight("pf_1", "req_2", None))
    assert "not yet sent to Glider" in texts


def test_in_flight_escapes_glider_operation_id() -> None:
    """A hostile operation id from Glider cannot inject a mention or close the code span."""
    texts = _texts(messages.in_flight("pf_1", "req_1", _record(operation_id="`<!here>`")))
    assert "'&lt;!here&gt;'" in texts
    assert "<!here>" not in texts


def test_usage_shows_problem_and_forms() -> None:
    """A usage error says what was wrong and lists the right forms."""
    reply = messages.usage(FORMS["/pause"], "`<@U1>` is not a portfolio id")
    texts = _texts(reply)
    assert "`&lt;@U1&gt;` is not a portfolio id" in texts
    assert "`/pause &lt;portfolioId&gt; [reason]`" in texts
    assert "Nothing was queued" in texts


def test_help_lists_every_rebalance_form() -> None:
    """Help without a problem lists the forms under a title."""
    texts = _texts(messages.usage(FORMS["/rebalance"]))
    assert "glider-relay commands" in texts
    assert "/rebalance status &lt;portfolioId&gt;" in texts


def test_refused_names_allowed_users_but_no_secret() -> None:
    """A refusal mentions who may act and never anything else from the settings."""
    reply = messages.refused("U9", frozenset({"U2", "U1", "<!channel>"}))
    texts = _texts(reply)
    assert "not allowed" in texts
    assert "<@U1>, <@U2>" in texts
    assert "<!channel>" not in texts
    assert "`U9`" in texts


def test_refused_when_nobody_is_allowed_says_whom_to_ask() -> None:
    """With BOT_ALLOWED_USERS unset the refusal points at the operator."""
    texts = _texts(messages.refused("U9", frozenset()))
    assert "whoever operates glider-relay" in texts
    assert "BOT_ALLOWED_USERS" in texts


def test_not_queued_says_nothing_was_done() -> None:
    """A store outage answers clearly that nothing was done."""
    assert "Could not queue" in messages.not_queued().text
    assert "Nothing was done" in messages.not_queued().text


def test_status_shows_schedule_times_and_latest_request() -> None:
    """Status shows schedule status, last/next rebalance relative and absolute, and the request."""
    view = StatusView(portfolio_id="pf_1", portfolio=_portfolio(), record=_record(), now=NOW)
    texts = _texts(messages.status(view))
    assert "Schedule: *active* (daily)" in texts
    assert "Last rebalance: <!date^" in texts
    assert "2026-11-22 09:00 UTC> (3 h 0 min ago)" in texts
    assert "2026-11-23 09:00 UTC> (in 21 h 0 min)" in texts
    assert "Latest tracked request: `req_01JX` (rebalance, *submitted*)" in texts
    assert "from alice" in texts


def test_status_escapes_glider_and_user_text() -> None:
    """Portfolio name, error message and requester name are escaped."""
    portfolio = _portfolio().model_copy(update={"portfolio_name": "<!channel> & co"})
    record = _record(
        error_message="<http://x|y>",
        requested_by=Requester(user_name="<@U1>"),
        state=RequestState.FAILED,
    )
    view = StatusView(portfolio_id="pf_1", portfolio=portfolio, record=record, now=NOW)
    texts = _texts(messages.status(view))
    pairs = [
        ("<!channel> & co", "&lt;!channel&gt; &amp; co"),
        ("<http://x|y>", "&lt;http://x|y&gt;"),
        ("<@U1>", "&lt;@U1&gt;"),
    ]
    for raw, escaped in pairs:
        assert escaped in texts
        assert raw not in texts


def test_status_without_glider_still_shows_the_tracked_request() -> None:
    """Without Glider details the note is shown and the tracked request still is."""
    view = StatusView(
        portfolio_id="pf_1", glider_note="Glider details are unavailable", record=_record(), now=NOW
    )
    texts = _texts(messages.status(view))
    assert "Glider details are unavailable" in texts
    assert "`req_01JX`" in texts


def test_status_with_nothing_tracked_and_no_schedule() -> None:
    """A portfolio without schedule and without requests says so plainly."""
    portfolio = PortfolioDetail.model_validate({"portfolioId": "pf_1"})
    texts = _texts(messages.status(StatusView(portfolio_id="pf_1", portfolio=portfolio, now=NOW)))
    assert "Schedule: none" in texts
    assert "Latest tracked request: none" in texts


def test_status_with_never_rebalanced_portfolio() -> None:
    """Null lastRebalanceAt reads as never."""
    view = StatusView(portfolio_id="pf_1", portfolio=_portfolio(lastRebalanceAt=None), now=NOW)
    assert "Last rebalance: never" in _texts(messages.status(view))


def test_status_shows_why_tracked_requests_are_missing() -> None:
    """When the store could not be read the status says so instead of 'none'."""
    view = StatusView(portfolio_id="pf_1", record_note="Tracked requests are unavailable", now=NOW)
    texts = _texts(messages.status(view))
    assert "Tracked requests are unavailable" in texts
    assert "Latest tracked request: none" not in texts
