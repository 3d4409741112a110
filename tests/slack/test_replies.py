"""Reply texts: one per outcome, Glider's and users' text escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.core.commands import Action, Requester
from relay.core.plans import ReplyKind
from relay.core.records import RequestRecord, RequestState
from relay.slack.replies import render

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def record(state: RequestState, action: Action = Action.REBALANCE, **fields: Any) -> RequestRecord:
    return RequestRecord(
        request_id="req_01",
        action=action,
        portfolio_id="pf_1",
        state=state,
        requested_by=Requester(user_id="U1"),
        accepted_at=NOW,
        updated_at=NOW,
        **fields,
    )


@pytest.mark.parametrize(
    ("state", "action", "words"),
    [
        (RequestState.COMPLETED, Action.REBALANCE, "completed"),
        (RequestState.PAUSED, Action.PAUSE, "paused"),
        (RequestState.RESUMED, Action.RESUME, "running again"),
        (RequestState.CANCELLED, Action.REBALANCE, "cancelled"),
        (RequestState.FAILED, Action.PAUSE, "pause of `pf_1` failed"),
        (RequestState.STUCK, Action.REBALANCE, "stuck"),
    ],
)
def test_each_final_state_says_what_happened(
    state: RequestState, action: Action, words: str
) -> None:
    """The headline names the outcome and the portfolio."""
    message = render(record(state, action), ReplyKind.FINAL, now=NOW)
    assert words in message["text"]
    assert "`pf_1`" in message["text"]
    assert message["blocks"][0]["text"]["text"] == message["text"]


def test_glider_error_text_is_escaped() -> None:
    """A failure reason with Slack control sequences arrives inert."""
    failed = record(RequestState.FAILED, error_message="boom <!channel> <https://x|click> & co")
    text = render(failed, ReplyKind.FINAL, now=NOW)["text"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; &lt;https://x|click&gt; &amp; co" in text


def test_cooldown_rejection_tells_when_to_retry() -> None:
    """A cooldown refusal shows the retry time as a Slack date."""
    rejected = record(
        RequestState.REJECTED, error_code="cooldown", retry_at=NOW + timedelta(minutes=5)
    )
    text = render(rejected, ReplyKind.FINAL, now=NOW)["text"]
    assert "cooldown" in text
    assert "<!date^" in text
    assert "in 5 min" in text


def test_unknown_portfolio_rejection_is_explained() -> None:
    """A 404 refusal says Glider does not know the portfolio."""
    rejected = record(RequestState.REJECTED, error_code="not_found", error_message="API_200")
    assert "does not know portfolio `pf_1`" in render(rejected, ReplyKind.FINAL, now=NOW)["text"]


def test_awaiting_user_update_mentions_the_operation() -> None:
    """The awaiting_user update says polling goes on and names the operation."""
    waiting = record(RequestState.AWAITING_USER, operation_id="rebalance:pf_1:x")
    message = render(waiting, ReplyKind.AWAITING_USER, now=NOW)
    assert "end-user action" in message["text"]
    assert "rebalance:pf_1:x" in str(message["blocks"][1])
