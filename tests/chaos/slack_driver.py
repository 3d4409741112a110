"""Slash commands sent to a running ``glider-relay web`` the way Slack sends them, acks sorted.

A command Slack was told is queued (the ack names its ``req_`` id) must never be
lost; a command whose ack said the store is unreachable was, by its own words,
not done; one whose ack said "could not confirm" is settled later through its
response_url. Anything else (an HTTP error, a timeout) is kept apart as ``unclear``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import aiohttp

from tests.fixtures.slack import FakeSlack, signed_command

QUEUED = re.compile(r"^Queued .* as `(req_[0-9A-Z]{26})`\.$")
NOT_QUEUED = "Could not queue your command"
# The write got no answer: queued or not, the truth follows through response_url.
UNKNOWN = re.compile(r"Could not confirm that .* was queued as `(req_[0-9A-Z]{26})`; checking")


@dataclass
class Acks:
    """What Slack was told about each command it sent, by portfolio."""

    queued: dict[str, str] = field(default_factory=dict)  # portfolio -> request id
    refused: list[str] = field(default_factory=list)  # "could not queue" (store down)
    unknown: dict[str, str] = field(default_factory=dict)  # "could not confirm; checking"
    unclear: list[str] = field(default_factory=list)  # any other answer, or none within 3 s

    @property
    def sent(self) -> int:
        return len(self.queued) + len(self.refused) + len(self.unknown) + len(self.unclear)


async def send_slash(
    http: aiohttp.ClientSession,
    slack: FakeSlack,
    portfolio_id: str,
    acks: Acks,
    *,
    command: str = "/rebalance",
) -> None:
    """POST ``/rebalance <portfolio_id>`` (or ``command``) signed; file the ack by what it said.

    Its replies go to the fake Slack's ``response_url`` named after the portfolio.
    """
    signed = signed_command(command, portfolio_id, response_url=slack.response_url(portfolio_id))
    try:
        async with (
            asyncio.timeout(3),
            http.post("/slack/events", data=signed.body, headers=signed.headers) as response,
        ):
            text = str((await response.json())["text"]) if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
        text = ""
    matched, unknown = QUEUED.match(text), UNKNOWN.search(text)
    if matched:
        acks.queued[portfolio_id] = matched.group(1)
    elif unknown:
        acks.unknown[portfolio_id] = unknown.group(1)
    elif NOT_QUEUED in text:
        acks.refused.append(portfolio_id)
    else:
        acks.unclear.append(portfolio_id)


async def ready_status(http: aiohttp.ClientSession) -> int:
    """The status ``GET /readyz`` answers (0 when the web process does not answer at all)."""
    try:
        async with asyncio.timeout(3), http.get("/readyz") as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def ready_is(http: aiohttp.ClientSession, status: int) -> bool:
    """Whether ``GET /readyz`` answers ``status`` now."""
    return await ready_status(http) == status
