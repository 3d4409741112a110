"""What every admin route shares: auth, error shape, pagination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, SecretStr

from relay.admin.common import ApiError, admin_middleware, json_body, page_ids, parse_limit

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
TOKEN = "admin-token-for-tests"


class Thing(BaseModel):
    name: str
    size: int


async def _echo(request: web.Request) -> web.Response:
    thing = await json_body(request, Thing)
    if thing.name == "missing":
        raise ApiError(404, "not_found", "no such thing")
    return web.json_response({"name": thing.name, "limit": parse_limit(request)})


def _app(token: str | None) -> web.Application:
    app = web.Application(middlewares=[admin_middleware(SecretStr(token) if token else None)])
    app.router.add_post("/things", _echo)
    return app


async def test_unset_token_disables_admin_api(aiohttp_client: ClientFactory) -> None:
    """While RELAY_ADMIN_TOKEN is unset every route answers 503."""
    client = await aiohttp_client(_app(None))
    response = await client.post("/things", json={"name": "a", "size": 1})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
async def test_wrong_credentials_get_401(aiohttp_client: ClientFactory, header: str | None) -> None:
    """Missing, wrong or non-bearer credentials get 401 and the error shape."""
    client = await aiohttp_client(_app(TOKEN))
    headers = {"Authorization": header} if header else {}
    response = await client.post("/things", json={"name": "a", "size": 1}, headers=headers)
    assert response.status == 401
    assert set((await response.json())["error"]) == {"code", "message"}


async def test_errors_have_one_shape(aiohttp_client: ClientFactory) -> None:
    """Bad JSON is 400, invalid fields 422 with details, ApiError keeps its status, routes 404."""
    client = await aiohttp_client(_app(TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad_json = await client.post("/things", data=b"{", headers=auth)
    assert bad_json.status == 400
    invalid = await client.post("/things", json={"name": "a", "size": "big"}, headers=auth)
    assert invalid.status == 422
    assert (await invalid.json())["error"]["details"][0]["field"] == "size"
    missing = await client.post("/things", json={"name": "missing", "size": 1}, headers=auth)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    bad_limit = await client.post("/things?limit=501", json={"name": "a", "size": 1}, headers=auth)
    assert bad_limit.status == 400
    no_route = await client.get("/nothing", headers=auth)
    assert no_route.status == 404
    assert "error" in await no_route.json()


async def test_pages_cover_the_index_newest_first(any_redis: aioredis.Redis) -> None:
    """Following nextCursor visits every id once, newest (largest) first, then stops."""
    ids = [f"req_{n:04d}" for n in range(7)]
    await any_redis.zadd("{gr}:test-index", dict.fromkeys(ids, 0))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await page_ids(any_redis, "{gr}:test-index", cursor=cursor, limit=3)
        seen.extend(page)
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
