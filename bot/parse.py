"""Slash-command text to a typed command: one pure function, :func:`parse`.

Slack sends the text with ``&``, ``<`` and ``>`` as HTML entities; the parsed
values hold what the user typed (replies escape it again on the way out).
Anything that is not exactly one of the documented forms raises
:class:`UsageError`, whose message says what was wrong and which carries the
right forms, so the reply can show them. Nothing else is ever raised.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from relay.core.bounds import REASON_CHARS
from relay.core.commands import PORTFOLIO_ID_RE

REBALANCE, PAUSE, RESUME = "/rebalance", "/pause", "/resume"
COMMAND_NAMES = (REBALANCE, PAUSE, RESUME)
# Command names are case-insensitive (docs/contract.md §4.2): what Bolt's listener matches.
COMMAND_PATTERN = re.compile(
    "^(?:" + "|".join(re.escape(name) for name in COMMAND_NAMES) + ")$", re.IGNORECASE
)
MAX_REASON = REASON_CHARS
_MAX_ID = 64
MAX_LIST_PAGE = 100  # /rebalance list pages (10 portfolios each: the listing's 1000)
_ECHO = 40  # longest piece of user text quoted back in an error
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}

# The right forms of each command, shown with every usage error.
FORMS: dict[str, tuple[str, ...]] = {
    REBALANCE: (
        "/rebalance <portfolioId>",
        "/rebalance status <portfolioId>",
        "/rebalance list [page]",
        "/rebalance help",
    ),
    PAUSE: ("/pause <portfolioId> [reason]",),
    RESUME: ("/resume <portfolioId>",),
}
ALL_FORMS: tuple[str, ...] = tuple(form for forms in FORMS.values() for form in forms)


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rebalance(_Command):
    kind: Literal["rebalance"] = "rebalance"
    portfolio_id: str


class Status(_Command):
    kind: Literal["status"] = "status"
    portfolio_id: str


class PortfolioList(_Command):
    kind: Literal["list"] = "list"
    page: int = Field(default=1, ge=1, le=MAX_LIST_PAGE)


class Pause(_Command):
    kind: Literal["pause"] = "pause"
    portfolio_id: str
    reason: str | None = Field(default=None, max_length=MAX_REASON)


class Resume(_Command):
    kind: Literal["resume"] = "resume"
    portfolio_id: str


class Help(_Command):
    kind: Literal["help"] = "help"
    command: str


Command = Rebalance | Status | PortfolioList | Pause | Resume | Help


class UsageError(Exception):
    """The text is not a valid command; ``message`` says why, ``forms`` show the right way."""

    def __init__(self, message: str, forms: tuple[str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.forms = forms


def command_name(raw: str) -> str | None:
    """The bot's command ``raw`` names, in any case (``/REBALANCE``); None if none."""
    name = raw.lower()
    return name if name in COMMAND_NAMES else None


def parse(command: str, text: str) -> Command:
    """Parse a slash command and its text, or raise :class:`UsageError`."""
    name = command.strip().lower()
    if name not in FORMS:
        raise UsageError(f"`{_echo(command)}` is not a command of this bot.", ALL_FORMS)
    forms = FORMS[name]
    text = _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)
    words = text.split()
    if not words or (len(words) == 1 and words[0].lower() == "help"):
        return Help(command=name)
    if words[0].lower() == "help":
        raise UsageError("`help` takes nothing after it.", forms)
    if name == REBALANCE:
        return _rebalance(words, forms)
    portfolio_id = _portfolio_id(words[0], forms)
    if name == PAUSE:
        return Pause(portfolio_id=portfolio_id, reason=_reason(text, forms))
    _no_more(words[1:], forms)
    return Resume(portfolio_id=portfolio_id)


def _rebalance(words: list[str], forms: tuple[str, ...]) -> Rebalance | Status | PortfolioList:
    if words[0].lower() == "list":
        return _list(words[1:], forms)
    if words[0].lower() == "status":
        if len(words) == 1:
            raise UsageError("`status` needs a portfolio id after it.", forms)
        portfolio_id = _portfolio_id(words[1], forms)
        _no_more(words[2:], forms)
        return Status(portfolio_id=portfolio_id)
    portfolio_id = _portfolio_id(words[0], forms)
    _no_more(words[1:], forms)
    return Rebalance(portfolio_id=portfolio_id)


def _list(words: list[str], forms: tuple[str, ...]) -> PortfolioList:
    if not words:
        return PortfolioList()
    _no_more(words[1:], forms)
    word = words[0]
    if not (
        word.isascii() and word.isdigit() and len(word) <= 3 and 1 <= int(word) <= MAX_LIST_PAGE
    ):
        raise UsageError(
            f"`{_echo(word)}` is not a page number: `list` takes 1 to {MAX_LIST_PAGE}.", forms
        )
    return PortfolioList(page=int(word))


def _portfolio_id(word: str, forms: tuple[str, ...]) -> str:
    if PORTFOLIO_ID_RE.fullmatch(word):
        return word
    if len(word) > _MAX_ID:
        problem = f"is {len(word)} characters long (at most {_MAX_ID})"
    else:
        problem = "may only contain letters, digits, `_` and `-`"
    raise UsageError(f"`{_echo(word)}` is not a portfolio id: it {problem}.", forms)


def _reason(text: str, forms: tuple[str, ...]) -> str | None:
    parts = text.strip().split(maxsplit=1)
    reason = parts[1].strip() if len(parts) == 2 else ""
    if len(reason) > MAX_REASON:
        raise UsageError(f"The reason is {len(reason)} characters; at most {MAX_REASON}.", forms)
    return reason or None


def _no_more(extra: list[str], forms: tuple[str, ...]) -> None:
    if extra:
        raise UsageError(f"Unexpected `{_echo(' '.join(extra))}` after the portfolio id.", forms)


def _echo(text: str) -> str:
    """User text quoted back: one line, short, without backticks that would end the quote."""
    flat = " ".join(text.replace("`", "'").split())
    return flat if len(flat) <= _ECHO else flat[: _ECHO - 1] + "…"
