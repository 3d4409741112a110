"""Admin API for tracked operations: list with filters and cursor, show one, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.admin.app import create_admin_app
from relay.core import transitions
from relay.core.commands import Action
from relay.core.records import RequestState
from relay.settings import load_settings
from relay.store import outcomes
from relay.store.requests import RequestStore
from tests.fixtures.worker import queue_command, request_record, take_command

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
TOKEN = "operations-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(aiohttp_client: ClientFactory, any_redis: aioredis.Redis) -> Client:
    settings = load_settings(relay_admin_token=TOKEN)
    return await aiohttp_client(create_admin_app(any_redis, settings))


async def _get(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path, headers=AUTH)
    assert response.status == status, await response.text()
    return await response.json()


def _newest_first(ids: list[str]) -> list[str]:
    """ULID order (ids made within one millisecond sort by their random part)."""
    return sorted(ids, reverse=True)


async def _history(redis: aioredis.Redis) -> list[str]:
    """Three requests, oldest first: a submitted rebalance, a rejected one, a pause."""
    ids = []
    for action, portfolio in [
        (Action.REBALANCE, "pf_a"),
        (Action.REBALANCE, "pf_b"),
        (Action.PAUSE, "pf_a"),
    ]:
        command = await queue_command(redis, action, portfolio)
        await take_command(redis)
        ids.append(command.request_id)
    now = datetime.now(UTC)
    first = await request_record(redis, ids[0])
    await outcomes.apply(redis, transitions.submitted(first, now, "op-1", now, now))
    second = await request_record(redis, ids[1])
    await outcomes.apply(redis, transitions.rejected(second, now, "not_found", "no pf_b"))
    return ids


async def test_lists_newest_first_with_operation_fields(
    client: Client, any_redis: aioredis.Redis
) -> None:
    """Every tracked command, newest first, with its operation; no response_url exposed."""
    ids = await _history(any_redis)
    body = await _get(client, "/operations")
    assert [item["requestId"] for item in body["data"]] == _newest_first(ids)
    assert body["nextCursor"] is None
    by_id = {item["requestId"]: item for item in body["data"]}
    submitted = by_id[ids[0]]
    assert submitted["state"] == "submitted"
    assert submitted["operationId"] == "op-1"
    assert submitted["requestedBy"]["userName"] == "alice"
    assert "responseUrl" not in submitted
    assert "response_url" not in str(body)
    rejected = by_id[ids[1]]
    assert rejected["error"] == {"code": "not_found", "message": "no pf_b"}


async def test_filters_by_state_and_portfolio(client: Client, any_redis: aioredis.Redis) -> None:
    """state= and portfolio= narrow the list, alone or together."""
    ids = await _history(any_redis)
    rejected = await _get(client, "/operations?state=rejected")
    assert [i["requestId"] for i in rejected["data"]] == [ids[1]]
    on_a = await _get(client, "/operations?portfolio=pf_a")
    assert [i["requestId"] for i in on_a["data"]] == _newest_first([ids[0], ids[2]])
    both = await _get(client, "/operations?portfolio=pf_a&state=queued")
    assert [i["requestId"] for i in both["data"]] == [ids[2]]


async def test_cursor_walks_every_page_once(client: Client, any_redis: aioredis.Redis) -> None:
    """limit=1 pages through all records exactly once, then nextCursor is null."""
    ids = await _history(any_redis)
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = await _get(client, f"/operations?limit=1{cursor}")
        seen += [item["requestId"] for item in page["data"]]
        if page["nextCursor"] is None:
            break
        cursor = f"&cursor={page['nextCursor']}"
    assert seen == _newest_first(ids)


async def test_filtered_scan_is_bounded_but_resumable(any_redis: aioredis.Redis) -> None:
    """A filter matching little stops after the scan budget with a cursor to go on from."""
    ids = await _history(any_redis)
    found: list[str] = []
    cursor: str | None = None
    calls = 0
    while calls == 0 or cursor:
        page, cursor = await RequestStore(any_redis).page(
            state=RequestState.SUBMITTED,
            portfolio=None,
            cursor=cursor,
            limit=5,
            budget=1,
            chunk=1,
        )
        found += [record.request_id for record in page]
        calls += 1
    assert found == [ids[0]]
    assert calls == 3  # one id walked per call: three calls for three records


async def test_show_one_and_unknown_is_404(client: Client, any_redis: aioredis.Redis) -> None:
    """GET /operations/{id} returns the object itself; an unknown id is 404 in the error shape."""
    ids = await _history(any_redis)
    shown = await _get(client, f"/operations/{ids[0]}")
    assert shown["requestId"] == ids[0]
    assert shown["operationId"] == "op-1"
    missing = await _get(client, "/operations/req_nope", status=404)
    assert missing["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("query", "code"),
    [("state=done", "bad_state"), ("portfolio=a%20b", "bad_portfolio"), ("limit=0", "bad_limit")],
)
async def test_bad_filters_are_400(client: Client, query: str, code: str) -> None:
    """Unknown states, malformed portfolio ids and bad limits are refused with 400."""
    body = await _get(client, f"/operations?{query}", status=400)
    assert body["error"]["code"] == code


async def test_requires_the_bearer_token(client: Client) -> None:
    """Without the admin token the operations API answers 401."""
    response = await client.get("/operations")
    assert response.status == 401
