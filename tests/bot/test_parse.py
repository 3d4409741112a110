"""Slash-command parsing: every documented form, and nothing but UsageError for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.parse import (
    ALL_FORMS,
    FORMS,
    MAX_REASON,
    Command,
    Help,
    Pause,
    PortfolioList,
    Rebalance,
    Resume,
    Status,
    UsageError,
    parse,
)
from relay.core.commands import PORTFOLIO_ID_PATTERN, PORTFOLIO_ID_RE

ULID = "01JWZG3KH9P4N5QXJVNK7M3WTV"

VALID: list[tuple[str, str, Command]] = [
    ("/rebalance", f"pf_{ULID}", Rebalance(portfolio_id=f"pf_{ULID}")),
    ("/rebalance", ULID, Rebalance(portfolio_id=ULID)),
    ("/rebalance", "  a1b2c3d4 \n", Rebalance(portfolio_id="a1b2c3d4")),
    ("/rebalance", "x", Rebalance(portfolio_id="x")),
    ("/rebalance", "a" * 64, Rebalance(portfolio_id="a" * 64)),
    ("/rebalance", "status pf_1", Status(portfolio_id="pf_1")),
    ("/rebalance", "STATUS\tpf-1", Status(portfolio_id="pf-1")),
    ("/rebalance", "list", PortfolioList()),
    ("/rebalance", "LIST 3", PortfolioList(page=3)),
    ("/rebalance", "list 100", PortfolioList(page=100)),
    ("/rebalance", "", Help(command="/rebalance")),
    ("/rebalance", "   ", Help(command="/rebalance")),
    ("/rebalance", "help", Help(command="/rebalance")),
    ("/rebalance", "Help", Help(command="/rebalance")),
    ("/pause", "pf_1", Pause(portfolio_id="pf_1")),
    ("/pause", "pf_1 market  is closed ", Pause(portfolio_id="pf_1", reason="market  is closed")),
    (
        "/pause",
        "pf_1 a &amp; b &lt;!channel&gt;",
        Pause(portfolio_id="pf_1", reason="a & b <!channel>"),
    ),
    ("/pause", "pf_1 &amp;lt;", Pause(portfolio_id="pf_1", reason="&lt;")),
    ("/pause", "", Help(command="/pause")),
    ("/pause", "help", Help(command="/pause")),
    ("/resume", "pf_1", Resume(portfolio_id="pf_1")),
    ("/resume", " help ", Help(command="/resume")),
    ("/REBALANCE", "pf_1", Rebalance(portfolio_id="pf_1")),
]


@pytest.mark.parametrize(("command", "text", "expected"), VALID)
def test_valid_forms(command: str, text: str, expected: Command) -> None:
    """Each documented form parses to its model."""
    assert parse(command, text) == expected


INVALID: list[tuple[str, str, str]] = [
    ("/rebalance", "list 0", "`0` is not a page number"),
    ("/rebalance", "list 101", "`101` is not a page number"),
    ("/rebalance", "list 000200", "`000200` is not a page number"),
    ("/rebalance", "list two", "`two` is not a page number"),
    ("/rebalance", "list 2 3", "Unexpected `3`"),
    ("/rebalance", "pf_1 now", "Unexpected `now` after the portfolio id"),
    ("/rebalance", "status", "`status` needs a portfolio id"),
    ("/rebalance", "status pf_1 pf_2", "Unexpected `pf_2`"),
    ("/rebalance", "status pf.1", "`pf.1` is not a portfolio id"),
    ("/rebalance", "pf/1", "may only contain letters, digits"),
    ("/rebalance", "a" * 65, "is 65 characters long (at most 64)"),
    ("/rebalance", "<@U123>", "`<@U123>` is not a portfolio id"),
    ("/rebalance", "&lt;!channel&gt;", "`<!channel>` is not a portfolio id"),
    ("/rebalance", "pf_é", "is not a portfolio id"),
    ("/rebalance", "help me", "`help` takes nothing after it"),
    ("/rebalance", "stats pf_1", "Unexpected `pf_1`"),
    ("/pause", "pf!1 reason", "`pf!1` is not a portfolio id"),
    ("/pause", "pf_1 " + "r" * (MAX_REASON + 1), f"at most {MAX_REASON}"),
    ("/resume", "pf_1 please", "Unexpected `please`"),
    ("/resume", "help x", "`help` takes nothing after it"),
    ("/deploy", "pf_1", "`/deploy` is not a command of this bot"),
    ("", "pf_1", "is not a command of this bot"),
]


@pytest.mark.parametrize(("command", "text", "message"), INVALID)
def test_invalid_forms_say_what_was_wrong(command: str, text: str, message: str) -> None:
    """Malformed text raises UsageError naming the problem."""
    with pytest.raises(UsageError) as caught:
        parse(command, text)
    assert message in caught.value.message


def test_usage_error_shows_the_forms_of_its_command() -> None:
    """A usage error carries the right forms of the command that was used."""
    with pytest.raises(UsageError) as caught:
        parse("/pause", "bad!")
    assert caught.value.forms == FORMS["/pause"]


def test_unknown_command_shows_every_form() -> None:
    """An unknown command's error lists all forms."""
    with pytest.raises(UsageError) as caught:
        parse("/nope", "")
    assert caught.value.forms == ALL_FORMS


def test_long_junk_is_quoted_short_and_without_backticks() -> None:
    """Echoed user text is one short line and cannot close the code quote."""
    with pytest.raises(UsageError) as caught:
        parse("/rebalance", "pf_1 `x`" + "y" * 100)
    quoted = caught.value.message.split("`")[1]
    assert len(quoted) <= 40
    assert quoted.startswith("'x'y")


def _outcome(command: str, text: str) -> Command | UsageError:
    """The parse result, or the UsageError it raised (any other exception propagates)."""
    try:
        return parse(command, text)
    except UsageError as exc:
        return exc


@given(command=st.text(max_size=20), text=st.text(max_size=200))
def test_arbitrary_input_only_ever_raises_usage_error(command: str, text: str) -> None:
    """Arbitrary command names and text parse or raise UsageError, nothing else."""
    outcome = _outcome(command, text)
    if isinstance(outcome, UsageError):
        assert outcome.message
        assert outcome.forms
    else:
        assert command.strip().lower() in FORMS
        if not isinstance(outcome, Help | PortfolioList):
            assert PORTFOLIO_ID_RE.fullmatch(outcome.portfolio_id)


@given(
    command=st.sampled_from(["/rebalance", "/pause", "/resume"]),
    words=st.lists(
        st.one_of(st.sampled_from(["status", "help", "&amp;", "&lt;", "<", "\u00a0"]), st.text()),
        max_size=5,
    ),
)
def test_arbitrary_words_of_real_commands_only_raise_usage_error(
    command: str, words: list[str]
) -> None:
    """Keyword-heavy text for real commands parses or raises UsageError, nothing else."""
    outcome = _outcome(command, " ".join(words))
    assert not isinstance(outcome, UsageError) or outcome.message


@given(
    portfolio_id=st.from_regex(PORTFOLIO_ID_PATTERN, fullmatch=True).filter(
        lambda pid: pid.lower() not in {"help", "status"}  # the keywords win over such ids
    )
)
def test_every_valid_portfolio_id_is_accepted(portfolio_id: str) -> None:
    """Any id of docs/contract.md §4.2's pattern parses as a rebalance of exactly that id."""
    assert parse("/rebalance", portfolio_id) == Rebalance(portfolio_id=portfolio_id)
    assert parse("/resume", portfolio_id) == Resume(portfolio_id=portfolio_id)
