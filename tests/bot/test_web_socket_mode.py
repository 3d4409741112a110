"""Socket Mode: with SLACK_APP_TOKEN the same commands arrive over Slack's WebSocket."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot.web import serve
from relay.core.commands import QueuedCommand
from relay.settings import load_settings
from relay.store import keys
from relay.store.connection import text_map
from tests.fixtures.slack import BOT_TOKEN, SOCKET, FakeSlack, signed_command

PF = "pf_01JWZG3KH9P4N5QXJVNK7M3WTV"


async def test_socket_mode_queues_and_acks_over_the_socket(
    redis_url: str, real_redis: aioredis.Redis, fake_slack: FakeSlack
) -> None:
    """A slash command over the socket is queued, then acked on the socket with its request id."""
    settings = load_settings(
        redis_url=redis_url,
        slack_app_token="xapp-1-test-token",
        slack_bot_token=BOT_TOKEN,
        slack_api_url=fake_slack.api_url,
        bot_allowed_users="U1",
        port=0,
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, host="127.0.0.1", stop=stop))
    try:
        form = signed_command("/rebalance", PF, user_id="U1").form
        envelope_id = await fake_slack.send_envelope("slash_commands", form, within=10)
        (ack,) = await fake_slack.wait_for(
            SOCKET, where=lambda call: call.payload.get("envelope_id") == envelope_id
        )
        entries = await real_redis.xrange(keys.COMMAND_STREAM) or []
        assert len(entries) == 1
        queued = QueuedCommand.model_validate_json(text_map(entries[0][1] or {})["command"])
        text = ack.payload["payload"]["text"]
        assert f"`{PF}`" in text
        assert f"`{queued.request_id}`" in text
        assert fake_slack.calls_to("apps.connections.open")[0].token == "xapp-1-test-token"
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
