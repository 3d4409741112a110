"""What every admin route shares: auth, error shape, pagination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, SecretStr
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from relay.admin.common import ApiError, admin_middleware, json_body, json_errors, parse_limit
from relay.core.ids import ulid
from relay.store import keys
from relay.store.connection import connect
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.chaos import ServerFactory
from tests.fixtures.web import WebFactory
from tests.fixtures.webhooks import ADMIN_TOKEN, AUTH, PUBLIC, admin_client

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


def _error_shape(body: object) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and {"code", "message"} <= set(body["error"])
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/subscriptions/{sid}:dlvs"),
        ("PATCH", "/v1/subscriptions/{sid}:dlvs"),
        ("DELETE", "/v1/subscriptions/{sid}:dlvs"),
        ("POST", "/v1/subscriptions/{sid}:dlvs/rotate-secret"),
        ("GET", "/v1/subscriptions/" + "a" * 65),
        ("GET", "/v1/deliveries/dlv.1"),
        ("POST", "/v1/deliveries/dlv%20x/replay"),
        ("GET", "/v1/operations/req:1"),
    ],
)
async def test_malformed_path_ids_are_json_404_before_the_store(
    web_factory: WebFactory, fake_redis: aioredis.Redis, method: str, path: str
) -> None:
    """A path id that is not 1-64 of A-Za-z0-9_- is a JSON 404 that leaves the store as it was
    (``sub_x:dlvs`` is another key of the subscription, a WRONGTYPE 500 before)."""
    web = await web_factory(fake_redis, relay_admin_token=ADMIN_TOKEN)
    created = await web.client.post(
        "/v1/subscriptions",
        json={"url": "https://[2606:4700::1111]/", "events": ["*"]},
        headers=AUTH,
    )
    sid = (await created.json())["id"]
    await fake_redis.zadd(keys.subscription(sid) + ":dlvs", {"dlv_1": 1})
    before = sorted(await fake_redis.keys("*"))
    response = await web.client.request(
        method, path.format(sid=sid), json={"enabled": False}, headers=AUTH
    )
    assert response.status == 404
    assert response.content_type == "application/json"
    assert _error_shape(await response.json())
    assert sorted(await fake_redis.keys("*")) == before


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing-here", 404),
        ("GET", "/nothing-here", 404),
        ("DELETE", "/v1/subscriptions", 405),
        ("PUT", "/healthz", 405),
        ("GET", "/slack/events", 405),
    ],
)
async def test_every_error_of_the_web_process_has_the_json_shape(
    web_factory: WebFactory, fake_redis: aioredis.Redis, method: str, path: str, status: int
) -> None:
    """Unknown routes and wrong methods, on the admin mount and off it, answer the error shape."""
    web = await web_factory(fake_redis, relay_admin_token=ADMIN_TOKEN)
    response = await web.client.request(method, path, headers=AUTH)
    assert response.status == status
    assert _error_shape(await response.json())
    if status == 405:
        assert response.headers["Allow"]


async def test_oversized_and_bad_json_bodies_have_the_json_shape(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """A body over the limit is a JSON 413, one that is not JSON a JSON 400."""
    web = await web_factory(fake_redis, relay_admin_token=ADMIN_TOKEN)
    big = await web.client.post("/v1/subscriptions", data=b"x" * 200_000, headers=AUTH)
    assert big.status == 413
    assert _error_shape(await big.json())
    bad = await web.client.post("/v1/subscriptions", data=b"{", headers=AUTH)
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "bad_json"


async def _explode(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def test_unhandled_exception_is_a_logged_json_500(
    aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler's bug answers a JSON 500 that says nothing of it, and the log has the trace."""
    app = _app(TOKEN)
    app.router.add_get("/explode", _explode)
    client = await aiohttp_client(app)
    response = await client.get("/explode", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 500
    body = await response.json()
    assert body == {"error": {"code": "internal", "message": "internal error"}}
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions/sub_01"),
        ("POST", "/v1/subscriptions/sub_01/rotate-secret"),
        ("GET", "/v1/deliveries"),
        ("GET", "/v1/operations"),
        ("GET", "/v1/operations/req_01"),
    ],
)
async def test_admin_routes_answer_json_503_while_redis_is_down(
    web_factory: WebFactory, redis_servers: ServerFactory, method: str, path: str
) -> None:
    """A real Redis stopped under the running app: admin routes answer 503 in the error shape."""
    server = await redis_servers()
    redis = connect(server.url)
    try:
        web = await web_factory(redis, relay_admin_token=ADMIN_TOKEN)
        assert (await web.client.get("/v1/subscriptions", headers=AUTH)).status == 200
        await server.kill()
        response = await web.client.request(method, path, headers=AUTH)
        assert response.status == 503
        body = await response.json()
        assert _error_shape(body)
        assert body["error"]["code"] == "store_unavailable"
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (BusyLoadingError("Redis is loading the dataset in memory"), 503, "unreachable"),
        (ReadOnlyError("You can't write against a read only replica."), 503, "read-only"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), 503, "full"),
        (ResponseError("OOM command not allowed ... script: f"), 503, "full"),
        (ClusterDownError("The cluster is down"), 503, "unreachable"),
        (ResponseError("WRONGTYPE Operation against a key"), 500, "internal error"),
    ],
    ids=["loading", "replica", "oom", "oom-in-script", "cluster-down", "wrong-type"],
)
async def test_redis_unable_to_serve_is_a_json_503_saying_why(
    aiohttp_client: ClientFactory, error: Exception, status: int, message: str
) -> None:
    """Redis loading, read-only after a failover, full or its cluster down: 503
    ``store_unavailable`` saying which, not a 500; a wrong key type is still a bug (500)."""

    async def fails(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/fails", fails)
    client = await aiohttp_client(app)
    response = await client.get("/fails")
    assert response.status == status
    body = await response.json()
    assert message in body["error"]["message"]
    if status == 503:
        assert body["error"]["code"] == "store_unavailable"


@pytest.mark.parametrize(
    ("path", "prefix", "other"),
    [
        ("/subscriptions", "sub", "dlv"),
        ("/deliveries", "dlv", "sub"),
        ("/operations", "req", "sub"),
    ],
)
async def test_a_list_cursor_must_be_an_id_of_that_list(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis, path: str, prefix: str, other: str
) -> None:
    """Garbage, another list's id, a cut or lower-case ULID: 400 bad_cursor, never a 200 with
    an empty or restarted page (docs/contract.md §6.3); a well-formed id pages on."""
    client = await admin_client(aiohttp_client, fake_redis)
    await SubscriptionStore(fake_redis).create(SubscriptionCreate(url=PUBLIC, events=["*"]))
    good = f"{prefix}_{ulid()}"
    assert (await client.get(f"{path}?cursor={good}", headers=AUTH)).status == 200
    for cursor in ("garbage", "zzzzzz", f"{other}_{ulid()}", good.lower(), good[:-1], good + "0"):
        answer = await client.get(path, params={"cursor": cursor}, headers=AUTH)
        assert answer.status == 400, cursor
        assert (await answer.json())["error"]["code"] == "bad_cursor", cursor


async def test_a_deliveries_filter_must_name_a_subscription(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis
) -> None:
    """A ``subscription`` that is no subscription id is 400 bad_subscription, not a quiet
    empty page (it would be read as a Redis key name); a real or on-call one is a page."""
    admin = await admin_client(aiohttp_client, any_redis)
    for bad in ("nope", "sub_x", "sub_01ARZ3NDEKTSV4RRFFQ69G5FA", "{gr}:sub:"):
        answer = await admin.get("/deliveries", params={"subscription": bad}, headers=AUTH)
        assert answer.status == 400, bad
        assert (await answer.json())["error"]["code"] == "bad_subscription"
    for good in ("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "sys_pagerduty"):
        answer = await admin.get("/deliveries", params={"subscription": good}, headers=AUTH)
        assert answer.status == 200, good
