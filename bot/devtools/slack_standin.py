"""A stand-in for Slack on loopback, for ``dev`` and ``demo`` (no Slack, no network).

It answers the Web API methods the relay calls (``conversations.open``,
``chat.postMessage``, ...) and the ``response_url`` replies, records every
message and hands it to a callback (``dev`` prints them). It also signs slash
commands the way Slack does, so a local run goes through the real verification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web


def slack_signature(secret: str, timestamp: int, body: str) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_slash_command(
    secret: str,
    *,
    command: str,
    text: str,
    user_id: str,
    response_url: str | None,
    trigger_id: str,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a slash command as Slack would POST it to ``/slack/events``.

    ``response_url`` None leaves it out: the outcome then comes as a direct message.
    """
    form = {
        "token": "unused",
        "team_id": "T0LOCAL",
        "team_domain": "local",
        "channel_id": "C0LOCAL",
        "channel_name": "general",
        "user_id": user_id,
        "user_name": "local-user",
        "command": command,
        "text": text,
        "trigger_id": trigger_id,
        "api_app_id": "A0LOCAL",
    }
    if response_url is not None:
        form["response_url"] = response_url
    body = urlencode(form)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(secret, timestamp, body),
    }
    return body.encode(), headers


@dataclass(frozen=True)
class SlackMessage:
    """One message the relay sent: via a Web API method or to a response_url."""

    via: str  # "chat.postMessage", "response_url", ...
    channel: str | None
    text: str
    payload: dict[str, Any]


@dataclass
class LocalSlack:
    """Records messages; ``url`` is set once :func:`start_local_slack` has bound a port."""

    on_message: Callable[[SlackMessage], None] | None = None
    url: str = ""
    messages: list[SlackMessage] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self) -> str:
        return f"{self.url}/response/{next(self._ids)}"

    async def record(self, message: SlackMessage) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        if self.on_message is not None:
            self.on_message(message)

    async def wait_for(self, predicate: Callable[[SlackMessage], bool]) -> SlackMessage:
        """The first recorded message matching ``predicate`` (bound it with asyncio.timeout)."""
        async with self._changed:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                await self._changed.wait()


async def _payload(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        data: dict[str, Any] = await request.json()
        return data
    return dict(await request.post())


def _app(slack: LocalSlack) -> web.Application:
    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        payload = await _payload(request)
        if method == "conversations.open":
            return web.json_response({"ok": True, "channel": {"id": f"D{payload.get('users')}"}})
        if method.startswith("chat."):
            await slack.record(
                SlackMessage(method, payload.get("channel"), str(payload.get("text", "")), payload)
            )
        return web.json_response({"ok": True, "ts": f"{time.time():.6f}"})

    async def response(request: web.Request) -> web.Response:
        payload = await _payload(request)
        await slack.record(
            SlackMessage("response_url", None, str(payload.get("text", "")), payload)
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/api/{method}", api)
    app.router.add_post("/response/{id}", response)
    return app


async def start_local_slack(
    slack: LocalSlack, host: str = "127.0.0.1", port: int = 0
) -> web.AppRunner:
    """Serve ``slack`` on loopback; returns the runner to clean up."""
    runner = web.AppRunner(_app(slack), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    slack.url = f"http://{bound_host}:{bound_port}"
    return runner


def message_text(message: SlackMessage) -> str:
    """A message's words: its blocks' text when it has blocks, else its ``text``."""
    blocks = message.payload.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not blocks:
        return message.text
    parts = []
    for block in blocks:
        text = block.get("text") or {}
        if isinstance(text, dict) and text.get("text"):
            parts.append(str(text["text"]))
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("text"):
                parts.append(str(element["text"]))
    return " | ".join(parts) or message.text
