"""Admin API for dead letters and a request's timeline (docs/contract.md §6 shapes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.admin.app import create_admin_app
from relay.core import transitions
from relay.core.clock import to_ms, utc_now
from relay.settings import load_settings
from relay.slack.client import create_slack_api
from relay.store import keys, outcomes
from relay.store.connection import text, text_map
from relay.store.pending import PendingEntry
from relay.store.requests import RequestStore
from relay.worker.notifier import Notifier
from tests.fixtures.dead_letters import GivenUp, given_up
from tests.fixtures.slack import BOT_TOKEN, FakeSlack

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
TOKEN = "dead-letters-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(aiohttp_client: ClientFactory, any_redis: aioredis.Redis) -> Client:
    return await aiohttp_client(create_admin_app(any_redis, load_settings(relay_admin_token=TOKEN)))


async def _call(client: Client, method: str, path: str, status: int) -> Any:
    response = await client.request(method, path, headers=AUTH)
    assert response.status == status, await response.text()
    return await response.json()


async def test_list_filters_by_stream_and_pages(client: Client, any_redis: aioredis.Redis) -> None:
    """Both streams newest first, each with request, kind and reason; stream filter; cursor."""
    given: GivenUp = await given_up(any_redis)
    both = await _call(client, "GET", "/dead-letters", 200)
    assert [d["stream"] for d in both["data"]] == ["commands", "replies"]
    assert both["nextCursor"] is None
    command, reply = both["data"]
    assert command["requestId"] == given.stuck
    assert command["kind"] == "rebalance"
    assert "last error: Boom" in command["reason"]
    assert reply["requestId"] == given.paused
    assert reply["kind"] == "final"
    assert "no way left to tell the requester" in reply["reason"]
    assert set(reply) == {
        "id", "stream", "requestId", "kind", "reason", "deliveries", "deadAt", "entryId"
    }  # fmt: skip
    first = await _call(client, "GET", "/dead-letters?limit=1", 200)
    assert first["data"] == [command]
    assert first["nextCursor"] == command["id"]
    rest = await _call(client, "GET", f"/dead-letters?limit=1&cursor={command['id']}", 200)
    assert rest == {"data": [reply], "nextCursor": None}
    only = await _call(client, "GET", "/dead-letters?stream=replies", 200)
    assert only["data"] == [reply]
    bad = await _call(client, "GET", "/dead-letters?stream=events", 400)
    assert bad["error"]["code"] == "bad_stream"
    assert (await _call(client, "GET", "/dead-letters?cursor=x", 400))["error"]["code"] == (
        "bad_cursor"
    )


async def test_replay_puts_it_back_once_and_operations_say_who_was_not_told(
    client: Client, any_redis: aioredis.Redis
) -> None:
    """/v1/operations shows the reply was not delivered and where it waits; replay is once."""
    given = await given_up(any_redis)
    view = await _call(client, "GET", f"/operations/{given.paused}", 200)
    assert view["reply"]["status"] == "not_sent"
    dead_id = view["reply"]["deadLetterId"]
    replayed = await _call(client, "POST", f"/dead-letters/{dead_id}/replay", 202)
    assert replayed["id"] == dead_id
    assert replayed["stream"] == "replies"
    assert await any_redis.xlen(keys.REPLIES_DEAD) == 0
    again = await _call(client, "POST", f"/dead-letters/{dead_id}/replay", 404)
    assert again["error"]["message"] == (
        f"no dead letter {dead_id} (already replayed, or never there)"
    )
    await _call(client, "POST", "/dead-letters/commands-1-0/replay", 404)
    # One audit entry, for the one replay that happened (admin actor, naming the request).
    audited = await _call(client, "GET", "/audit?action=dead_letter.replayed", 200)
    [entry] = audited["data"]
    assert entry["actor"]["source"] == "admin"
    assert entry["requestId"] == given.paused


async def test_a_command_of_an_ended_request_is_not_replayed(
    client: Client, any_redis: aioredis.Redis
) -> None:
    """Replaying the command of a request that has ended would do nothing: 409, and the dead
    letter stays where it is (a request still queued is replayed, as above)."""
    given = await given_up(any_redis)
    record = await RequestStore(any_redis).get(given.stuck)
    assert record is not None
    await outcomes.apply(any_redis, transitions.failed(record, utc_now(), "not_processed", "x"))
    [command] = (await _call(client, "GET", "/dead-letters?stream=commands", 200))["data"]
    refused = await _call(client, "POST", f"/dead-letters/{command['id']}/replay", 409)
    assert refused["error"]["code"] == "request_final"
    assert f"request {given.stuck} has ended (failed)" in refused["error"]["message"]
    assert await any_redis.xlen(keys.COMMANDS_DEAD) == 1
    assert (await _call(client, "GET", "/audit?action=dead_letter.replayed", 200))["data"] == []


async def test_timeline_of_a_request(client: Client, any_redis: aioredis.Redis) -> None:
    """The timeline holds the request's steps, its event and the reply's fate, in time order."""
    given = await given_up(any_redis)
    steps = await _call(client, "GET", f"/operations/{given.paused}/timeline", 200)
    assert steps["requestId"] == given.paused
    kinds = [e["kind"] for e in steps["entries"]]
    assert kinds[0] == "request"
    assert "event" in kinds
    assert kinds[-1] == "reply"
    # In time order to the millisecond (events carry milliseconds; within one, steps first).
    at_ms = [to_ms(datetime.fromisoformat(e["at"])) for e in steps["entries"]]
    assert at_ms == sorted(at_ms)
    assert any(e["summary"] == "portfolio.paused" for e in steps["entries"])
    await _call(client, "GET", "/operations/req_nope/timeline", 404)


async def test_a_replayed_reply_reaches_the_requester_once_the_cause_is_fixed(
    client: Client, any_redis: aioredis.Redis, fake_slack: FakeSlack
) -> None:
    """The reply nobody could receive, replayed once a bot token is set: the notifier sends
    it as a direct message and the request's reply says sent."""
    given = await given_up(any_redis)
    view = await _call(client, "GET", f"/operations/{given.paused}", 200)
    await _call(client, "POST", f"/dead-letters/{view['reply']['deadLetterId']}/replay", 202)
    settings = load_settings(slack_api_url=fake_slack.api_url, slack_bot_token=BOT_TOKEN)
    slack = create_slack_api(settings)
    try:
        notifier = Notifier(any_redis, slack, consumer="n2", claim_idle_ms=60_000)
        reply: Any = await any_redis.xreadgroup(
            keys.REPLIES_GROUP, "n2", {keys.REPLIES: ">"}, count=1
        )
        [[_, [(entry_id, fields)]]] = reply
        await notifier.handle(
            PendingEntry(keys.REPLIES, keys.REPLIES_GROUP, text(entry_id), text_map(fields))
        )
    finally:
        await slack.close()
    [posted] = fake_slack.calls_to("chat.postMessage")
    assert posted.payload["channel"] == "DU7"
    after = await _call(client, "GET", f"/operations/{given.paused}", 200)
    assert after["reply"]["status"] == "sent"
    assert after["reply"]["via"] == "direct_message"
    assert after["reply"]["deadLetterId"] is None
