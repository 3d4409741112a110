"""``glider-relay operations`` and ``glider-relay dead-letters`` against a real Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from relay.store import keys
from tests.bot.cli.support import run_cli
from tests.fixtures.dead_letters import GivenUp, given_up


@pytest.fixture
def store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> GivenUp:
    """REDIS_URL set for the CLI, on a database holding a dead reply and a dead command."""

    async def prepare() -> GivenUp:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.flushdb()
            return await given_up(client)
        finally:
            await client.aclose()

    monkeypatch.setenv("REDIS_URL", redis_url)
    return asyncio.run(prepare())


def _rows(out: str) -> tuple[str, list[str]]:
    header, *rows = out.splitlines()
    return header, rows


def test_operations_list_has_a_header_times_and_says_who_was_not_told(
    store: GivenUp, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each request with its times, and whether the requester heard of it (or the replay id)."""
    status, out, _ = run_cli(capsys, "operations", "list")
    assert status == 0
    header, rows = _rows(out)
    assert header.split()[:4] == ["REQUEST", "ACTION", "PORTFOLIO", "STATE"]
    assert "ACCEPTED" in header
    assert "REQUESTER TOLD" in header
    [paused] = [r for r in rows if store.paused in r]
    assert " paused " in paused
    assert "NO: replay replies-" in paused
    assert "Z " in paused  # accepted and finished times, UTC
    assert any(store.stuck in r and " queued " in r for r in rows)
    status, out, _ = run_cli(capsys, "operations", "list", "--portfolio", "pf_told", "--json")
    [view] = json.loads(out)
    assert view["reply"]["status"] == "not_sent"
    assert view["reply"]["deadLetterId"].startswith("replies-")


def test_operations_list_says_when_nothing_matches(
    store: GivenUp, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter that matches nothing says so, naming the filter."""
    status, out, _ = run_cli(capsys, "operations", "list", "--state", "failed")
    assert (status, out) == (0, "no operations match (state=failed)\n")
    status, _, err = run_cli(capsys, "operations", "list", "--portfolio", "bad id!")
    assert status == 1
    assert "portfolio must be 1-64 letters, digits, _ or -" in err


def test_operations_show_prints_the_timeline(
    store: GivenUp, capsys: pytest.CaptureFixture[str]
) -> None:
    """show: the request, its event, and the reply that could not be delivered."""
    status, out, _ = run_cli(capsys, "operations", "show", store.paused)
    assert status == 0
    assert f"request      {store.paused}" in out
    assert "state        paused" in out
    timeline = out.split("timeline\n", 1)[1]
    header, rows = _rows(timeline)
    assert header.split()[:3] == ["AT", "KIND", "WHAT"]
    kinds = [row.split()[2] for row in rows]
    assert kinds[0] == "request"
    assert "event" in kinds
    assert "reply" in kinds
    assert any("portfolio.paused" in row for row in rows)
    assert any("requester NOT told" in row for row in rows)
    status, _, err = run_cli(capsys, "operations", "show", "req_nope")
    assert (status, err) == (1, "glider-relay: no request req_nope\n")


def test_dead_letters_list_and_replay(
    store: GivenUp, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    """Both streams listed with request and reason; a replay puts the entry back once."""
    status, out, _ = run_cli(capsys, "dead-letters", "list")
    assert status == 0
    header, rows = _rows(out)
    assert header.split() == ["ID", "REQUEST", "KIND", "DEAD", "AT", "DELIVERIES", "REASON"]
    assert len(rows) == 2
    [reply_row] = [r for r in rows if r.startswith("replies-")]
    assert store.paused in reply_row
    assert "no way left to tell the requester" in reply_row
    status, out, _ = run_cli(capsys, "dead-letters", "list", "--stream", "commands")
    [command_row] = _rows(out)[1]
    assert store.stuck in command_row
    assert "last error: Boom" in command_row
    reply_id = reply_row.split()[0]
    status, out, _ = run_cli(capsys, "dead-letters", "replay", reply_id)
    assert status == 0
    assert f"queued {reply_id} again" in out
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries: Any = client.xrange(keys.REPLIES, "-", "+")
        [(_, fields)] = entries[-1:]
        assert fields == {"request_id": store.paused, "kind": "final"}
        assert client.xlen(keys.REPLIES_DEAD) == 0
    finally:
        client.close()
    status, _, err = run_cli(capsys, "dead-letters", "replay", reply_id)
    assert status == 1
    assert err == f"glider-relay: no dead letter {reply_id} (already replayed, or never there)\n"
    status, out, _ = run_cli(capsys, "dead-letters", "list", "--stream", "replies")
    assert out == "no dead letters (stream=replies)\n"
