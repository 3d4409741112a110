"""Cutting outside text: lengths held, characters and Slack escapes never split; bounded events."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core import transitions
from relay.core.bounds import (
    ELLIPSIS,
    ERROR_MESSAGE_CHARS,
    EVENT_BODY_BYTES,
    NAME_CHARS,
    OPERATION_ID_CHARS,
    USER_TEXT_CHARS,
    clip,
    clip_bytes,
    clip_mrkdwn,
)
from relay.core.commands import Action, Requester
from relay.core.error_codes import error_message
from relay.core.records import RequestRecord, RequestState
from relay.glider.errors import ServerError
from relay.glider.models import Operation, PortfolioDetail
from relay.slack.blocks import escape

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PIECES = st.sampled_from(["&", "<", ">", "a", "é", "e\u0301", "👩\u200d👧", "👍🏽", "\ufe0f", "`"])
TEXT = st.one_of(st.text(max_size=300), st.lists(PIECES, max_size=400).map("".join))
_BROKEN_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def test_short_text_is_left_alone() -> None:
    """What fits is returned as it is, without an ellipsis."""
    assert clip("abc", 3) == "abc"
    assert clip_mrkdwn("&lt;", 4) == "&lt;"


def test_a_cut_ends_in_an_ellipsis_within_the_limit() -> None:
    """A cut keeps the start and ends in ``…``, the whole within the limit."""
    assert clip("abcdef", 4) == "abc…"
    assert clip("abcdef", 1) == "…"


def test_a_cut_never_separates_a_mark_or_a_zwj_sequence() -> None:
    """A combining accent, a skin tone and a ZWJ family stay with their base character."""
    assert clip("abe\u0301xyz", 4) == "ab…"
    assert clip("a👍🏽zzzz", 3) == "a…"
    assert clip("a👩\u200d👧zzz", 4) == "a…"


def test_mrkdwn_is_never_cut_inside_an_entity_or_a_token() -> None:
    """``&lt;`` and ``<!date^...>`` are kept whole or dropped whole."""
    assert clip_mrkdwn("ab&lt;cd", 5) == "ab…"
    assert clip_mrkdwn("ab<!date^1^{x}|y> tail", 8) == "ab…"


@settings(max_examples=300, deadline=None)
@given(TEXT, st.integers(min_value=1, max_value=200))
def test_clip_holds_its_limit_and_keeps_a_prefix(text: str, limit: int) -> None:
    """Any text: within the limit, a prefix of the original, never a lone mark first."""
    cut = clip(text, limit)
    assert len(cut) <= limit
    if cut != text:
        assert cut.endswith(ELLIPSIS)
        kept = cut.removesuffix(ELLIPSIS)
        assert text.startswith(kept)
        rest = text[len(kept) :]
        assert not rest or unicodedata.combining(rest[0]) == 0
        assert not kept.endswith("\u200d")


@settings(max_examples=300, deadline=None)
@given(TEXT, st.integers(min_value=1, max_value=400))
def test_escaped_then_cut_never_splits_an_escape(text: str, limit: int) -> None:
    """Escape first, then cut: every ``&`` left still opens a whole entity."""
    cut = clip_mrkdwn(escape(text), limit)
    assert len(cut) <= limit
    assert not _BROKEN_ENTITY.search(cut)
    assert "<" not in cut


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=0, max_value=600))
def test_clip_bytes_never_ends_in_half_a_character(text: str, limit: int) -> None:
    """A subscriber's answer cut at any byte decodes to a prefix of it, no U+FFFD added."""
    body = text.encode()
    cut = clip_bytes(body, limit)
    assert len(cut.encode()) <= limit
    assert text.startswith(cut)


def test_glider_text_is_bounded_where_it_enters() -> None:
    """A several-KB Glider error, name or operation error is cut when the client reads it."""
    huge = "<b>" + "x" * 10_000
    assert len(ServerError(huge, status=502, code="C" * 500).message) == ERROR_MESSAGE_CHARS
    assert len(ServerError(huge, code="C" * 500).code or "") == 64
    detail = PortfolioDetail.model_validate({"portfolioId": "pf_1", "portfolioName": huge})
    assert len(detail.portfolio_name or "") == NAME_CHARS
    operation = Operation.model_validate(
        {"operationId": "op", "portfolioId": "pf_1", "state": huge, "error": huge}
    )
    assert len(operation.error or "") == ERROR_MESSAGE_CHARS
    assert len(operation.state_raw) == NAME_CHARS


def _record(**fields: object) -> RequestRecord:
    long_name = "\U00010000" * 5000
    return RequestRecord(
        request_id="req_01JX0000000000000000000000",
        action=Action.REBALANCE,
        portfolio_id="p" * 64,
        state=RequestState.QUEUED,
        requested_by=Requester(
            team_id=long_name, user_id=long_name, user_name=long_name, channel_id=long_name
        ),
        accepted_at=NOW,
        updated_at=NOW,
        **fields,
    )


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=800), st.sampled_from(["&", "\\", '"', "\u0001", "é"]))
def test_event_bodies_are_bounded_whatever_the_error(text: str, nasty: str) -> None:
    """A failure's webhook body stays under EVENT_BODY_BYTES for any Glider error text."""
    exc = ServerError((text + nasty) * 40, status=500, code=nasty * 200)
    record = _record(operation_id="\U00010000" * OPERATION_ID_CHARS)
    plan = transitions.failed(record, NOW, "server_error", error_message(exc) + " (after 3)")
    assert plan.event is not None
    body = plan.event.body()
    assert len(body) <= EVENT_BODY_BYTES
    data = json.loads(body)["data"]
    assert len(data["requestedBy"]["userName"]) == USER_TEXT_CHARS
    assert plan.set_fields["error_message"] == data["error"]["message"]
