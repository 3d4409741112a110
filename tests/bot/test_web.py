"""The web application: Slack request verification, body limits, health and the admin mount."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from bot.web import create_web_app
from relay.settings import ConfigError, load_settings
from relay.store.connection import connect
from tests.fixtures.glider import free_port
from tests.fixtures.slack import signed_command
from tests.fixtures.web import WebFactory

PF = "pf_01JWZG3KH9P4N5QXJVNK7M3WTV"


async def test_healthz_is_always_ok(web_factory: WebFactory) -> None:
    """/healthz answers 200 even when Redis is down."""
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        web = await web_factory(down)
        response = await web.client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    finally:
        await down.aclose()


async def test_readyz_ok_when_redis_answers(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """/readyz is 200 while Redis answers PING."""
    web = await web_factory(any_redis)
    response = await web.client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["redis"] == "ok"


async def test_readyz_503_when_redis_is_down(web_factory: WebFactory) -> None:
    """/readyz is 503 with a JSON body when Redis cannot be reached."""
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        web = await web_factory(down)
        response = await web.client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert (body["status"], body["redis"]) == ("unavailable", "unreachable")
        assert body["detail"] == "the relay's store is unreachable"
    finally:
        await down.aclose()


async def test_forged_signature_is_401_and_queues_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A request signed with another secret gets 401 and no side effect."""
    web = await web_factory(any_redis)
    response = await web.post(web.sign("/rebalance", PF, secret="not-the-secret"))
    assert response.status == 401
    assert await any_redis.dbsize() == 0


async def test_tampered_body_is_401(web_factory: WebFactory, any_redis: aioredis.Redis) -> None:
    """Changing the body after signing breaks the signature: 401."""
    web = await web_factory(any_redis)
    signed = web.sign("/rebalance", "pf_1")
    tampered = signed.body.replace("user_id=U1", "user_id=U2")
    response = await web.client.post("/slack/events", data=tampered, headers=signed.headers)
    assert response.status == 401
    assert await any_redis.dbsize() == 0


async def test_missing_signature_headers_are_401(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Without the signature or the timestamp header the request is refused."""
    web = await web_factory(any_redis)
    signed = web.sign("/rebalance", PF)
    for header in ("X-Slack-Signature", "X-Slack-Request-Timestamp"):
        headers = {k: v for k, v in signed.headers.items() if k != header}
        response = await web.client.post("/slack/events", data=signed.body, headers=headers)
        assert response.status == 401, header
    assert await any_redis.dbsize() == 0


async def test_timestamp_older_than_five_minutes_is_401(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A correctly signed but replayed request (timestamp 6 min old) is refused."""
    web = await web_factory(any_redis)
    old = web.sign("/rebalance", PF, timestamp=int(time.time()) - 6 * 60)
    response = await web.post(old)
    assert response.status == 401
    assert await any_redis.dbsize() == 0


async def test_timestamp_within_window_is_accepted(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A request signed four minutes ago is still inside Slack's window."""
    web = await web_factory(any_redis)
    response = await web.post(web.sign("/resume", "pf_1", timestamp=int(time.time()) - 4 * 60))
    assert response.status == 200
    assert len(await web.queued()) == 1


async def test_oversized_body_is_413_and_queues_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A body over 64 KiB is refused before Bolt sees it, even when correctly signed."""
    web = await web_factory(any_redis)
    big = web.sign("/pause", "pf_1 " + "x" * (70 * 1024))
    response = await web.post(big)
    assert response.status == 413
    assert await any_redis.dbsize() == 0


async def test_slack_ssl_check_is_answered(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Slack's unsigned ssl_check of a command URL gets 200 and has no side effect."""
    web = await web_factory(any_redis)
    response = await web.client.post("/slack/events", data="ssl_check=1&token=legacy-token")
    assert response.status == 200
    assert await any_redis.dbsize() == 0


async def test_unknown_command_is_not_acted_on(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """A signed command the app has no listener for gets Bolt's 404 and queues nothing."""
    web = await web_factory(any_redis)
    response = await web.post(web.sign("/deploy", PF))
    assert response.status == 404
    assert await any_redis.dbsize() == 0


async def test_admin_api_is_mounted_under_v1(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """/v1 routes go through the admin app's bearer check."""
    web = await web_factory(any_redis)
    response = await web.client.get("/v1/subscriptions")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_admin_api_is_503_without_a_token(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """With RELAY_ADMIN_TOKEN unset the admin API answers 503."""
    web = await web_factory(any_redis, relay_admin_token=None)
    response = await web.client.get("/v1/subscriptions", headers={"Authorization": "Bearer x"})
    assert response.status == 503


async def test_socket_mode_has_no_http_slack_endpoint(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """With SLACK_APP_TOKEN set, /slack/events is not served (Slack uses the socket)."""
    web = await web_factory(any_redis, slack_app_token="xapp-1-test", slack_signing_secret=None)
    signed = signed_command("/rebalance", PF)
    response = await web.client.post("/slack/events", data=signed.body, headers=signed.headers)
    assert response.status in (404, 405)
    assert (await web.client.get("/healthz")).status == 200
    assert await any_redis.dbsize() == 0


async def test_http_mode_without_signing_secret_is_refused(any_redis: aioredis.Redis) -> None:
    """Building the HTTP endpoint without a signing secret fails instead of trusting anyone."""
    settings = load_settings(slack_signing_secret=None, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        create_web_app(settings, any_redis)
