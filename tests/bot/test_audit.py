"""Slash commands leave their audit entries: received with the command, refusals alone.

Driven through the web app over signed HTTP; the entries are read back with the store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from relay.core.audit import DETAIL_MAX, AuditEntry
from relay.core.redact import register_secrets, unregister_secrets
from relay.store import keys
from relay.store.audit import AuditFilter, AuditStore
from relay.store.connection import connect
from tests.fixtures.glider import free_port
from tests.fixtures.slack import SIGNING_SECRET
from tests.fixtures.web import WebFactory

PF = "pf_01JWZG3KH9P4N5QXJVNK7M3WTV"
ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def secrets_redacted() -> Iterator[None]:
    """The web's secrets registered for redaction, as its start-up does."""
    register_secrets([SIGNING_SECRET, ADMIN_TOKEN])
    yield
    unregister_secrets([SIGNING_SECRET, ADMIN_TOKEN])


async def _entries(redis: aioredis.Redis, **where: str) -> list[AuditEntry]:
    entries, _ = await AuditStore(redis).page(AuditFilter(**where), limit=100)  # type: ignore[arg-type]
    return entries


async def test_a_queued_command_is_received_in_the_same_step(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """One command.received per queued command, naming who, what and its request id."""
    web = await web_factory(any_redis)
    await web.command("/rebalance", PF, user_id="U1", user_name="alice", trigger_id="t1")
    await web.command("/rebalance", PF, user_id="U1", user_name="alice", trigger_id="t1")
    [queued] = await web.queued()
    [entry] = await _entries(any_redis)
    assert entry.id.startswith("aud_")
    assert entry.action.value == "command.received"
    assert entry.actor.model_dump(by_alias=True) == {
        "source": "slack",
        "teamId": "T1",
        "userId": "U1",
        "userName": "alice",
    }
    assert (entry.portfolio_id, entry.request_id) == (PF, queued.request_id)
    assert entry.detail == "rebalance"
    assert entry.at == queued.accepted_at


async def test_refusals_are_appended_alone_and_queue_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A user outside BOT_ALLOWED_USERS and a rebalance while one is in flight: one
    command.refused each, nothing more on the command stream."""
    web = await web_factory(any_redis)
    await web.command("/pause", f"{PF} night", user_id="U666", user_name="mallory")
    assert await any_redis.xlen(keys.COMMAND_STREAM) == 0
    await web.command("/rebalance", PF, user_id="U1")
    await web.command("/rebalance", PF, user_id="U2", user_name="bob")
    [first] = await web.queued()
    refused = await _entries(any_redis, action="command.refused")
    assert [(e.actor.user_id, e.portfolio_id) for e in refused] == [("U2", PF), ("U666", PF)]
    in_flight, outsider = refused
    assert in_flight.detail == f"rebalance: in flight: {first.request_id} still runs"
    assert outsider.detail == (
        f"/pause {PF} night: not allowed: the user is not in BOT_ALLOWED_USERS"
    )
    assert [e.actor.user_id for e in await _entries(any_redis, user="mallory")] == ["U666"]


@pytest.mark.usefixtures("secrets_redacted")
async def test_no_secret_and_no_unbounded_text_reaches_an_entry(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Secrets typed into a pause reason or a user name are redacted; long text is cut."""
    web = await web_factory(any_redis)
    await web.command("/pause", f"{PF} because {SIGNING_SECRET} {'x' * 400}", user_id="U1")
    await web.command("/pause", f"{PF} {ADMIN_TOKEN}", user_id="U9", user_name=ADMIN_TOKEN)
    entries = await _entries(any_redis)
    assert [e.action.value for e in entries] == ["command.refused", "command.received"]
    raw = [fields for _, fields in await any_redis.xrange(keys.AUDIT) or []]
    stored = str(raw)
    assert SIGNING_SECRET not in stored
    assert ADMIN_TOKEN not in stored
    assert "[REDACTED]" in stored
    assert all(len(e.detail or "") <= DETAIL_MAX for e in entries)
    assert entries[1].detail is not None
    assert entries[1].detail.endswith("…")


async def test_a_refusal_is_answered_even_when_its_entry_cannot_be_written(
    web_factory: WebFactory,
) -> None:
    """Redis unreachable: the refusal still comes back at once (the entry is logged as lost)."""
    unreachable = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        web = await web_factory(unreachable)
        ack = await web.command("/rebalance", PF, user_id="U666")
        assert "not allowed" in ack["text"]
    finally:
        await unreachable.aclose()
