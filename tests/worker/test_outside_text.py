"""End to end, a worker against a hostile Glider: huge errors are cut, echoed secrets never leave.

A small aiohttp Glider answers a rebalance of ``pf_reject`` with a 400 whose
message echoes the request's ``x-api-key`` amid several KB of ``<&>``, and lets
``pf_fail`` run into a failed operation whose ``error`` does the same. The real
worker (executor, poller, notifier, dispatcher on real Redis) must still tell the
requester and the on-call channel (the Slack fake refuses invalid Block Kit),
keep every webhook body bounded, and leave the key out of the webhook bodies, the
admin API, every Slack message and every log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from relay.core.bounds import ERROR_TEXT_CHARS, EVENT_BODY_BYTES
from relay.core.commands import Action, QueuedCommand
from relay.core.poll_policy import PollPolicy
from relay.core.redact import register_secrets, unregister_secrets
from relay.logs import JsonFormatter
from relay.settings import Settings, load_settings
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from relay.worker.process import serve
from relay.worker.registry import Tuning
from tests.fixtures.slack import BOT_TOKEN, LOOPBACK_HOST, RESPONSE, FakeSlack, SlackCall
from tests.fixtures.webhooks import AUTH, ClientFactory, Receiver, admin_client
from tests.fixtures.worker import queue_command

KEY = "gldr_sk_echoed_0123456789abcdef"
ONCALL = "C0ONCALL1"
NOISE = "<&>" * 2000  # 6 KB that escaping makes 30 KB


def _fake_glider() -> web.Application:
    """Glider behind a careless proxy: every error quotes the API key it was sent."""

    async def rebalance(request: web.Request) -> web.Response:
        pf = request.match_info["pf"]
        key = request.headers.get("x-api-key", "")
        if pf == "pf_reject":
            error = {"code": "API_400", "message": f"no {pf} for key {key} {NOISE}"}
            return web.json_response({"success": False, "error": error}, status=400)
        data = {"operationId": f"op_{pf}", "submittedAt": datetime.now(UTC).isoformat()}
        return web.json_response({"success": True, "data": data}, status=202)

    async def operation(request: web.Request) -> web.Response:
        key = request.headers.get("x-api-key", "")
        data = {
            "operationId": request.match_info["op"],
            "portfolioId": request.match_info["pf"],
            "state": "failed",
            "error": f"swap refused for key {key}: {NOISE}",
        }
        return web.json_response({"success": True, "data": data})

    app = web.Application()
    app.router.add_post("/v2/portfolios/{pf}/rebalance", rebalance)
    app.router.add_get("/v2/portfolios/{pf}/operations/{op}", operation)
    return app


class _Lines(logging.Handler):
    """Every log line as the worker's stderr would carry it (the real JSON formatter)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@dataclass
class Run:
    """What one run of the scenario left behind."""

    commands: dict[str, QueuedCommand] = field(default_factory=dict)
    webhooks: list[bytes] = field(default_factory=list)
    replies: list[SlackCall] = field(default_factory=list)
    alerts: list[SlackCall] = field(default_factory=list)
    operations: str = ""
    logs: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _glider_url() -> AsyncIterator[str]:
    runner = web.AppRunner(_fake_glider(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _settings(redis_url: str, glider_url: str, slack: FakeSlack) -> Settings:
    return load_settings(
        redis_url=redis_url,
        glider_api_url=glider_url,
        glider_api_key=KEY,
        slack_bot_token=BOT_TOKEN,
        slack_api_url=slack.api_url,
        oncall_slack_channel=ONCALL,
        relay_allow_private_urls=True,
        slack_response_url_hosts=LOOPBACK_HOST,
        relay_job_cards=False,  # the replies' escaping is checked here (cards: test_cards.py)
    )


@pytest.fixture
async def run(  # noqa: PLR0917 (fixtures arrive as parameters)
    real_redis: aioredis.Redis,
    redis_url: str,
    fake_slack: FakeSlack,
    receiver: Receiver,
    log_lines: _Lines,
    aiohttp_client: ClientFactory,
) -> Run:
    """Queue a rejected and a failing rebalance; run the worker until everyone has heard."""
    await SubscriptionStore(real_redis).create(
        SubscriptionCreate(url=receiver.url("hook"), events=["*"])
    )
    result = Run()
    async with _glider_url() as glider_url:
        settings = _settings(redis_url, glider_url, fake_slack)
        register_secrets(settings.secret_values())  # as the worker's start-up does
        stop = asyncio.Event()
        tuning = Tuning(claim_idle_ms=2000, lease_ms=2000, poll=PollPolicy(first_s=0.1))
        worker = asyncio.create_task(serve(settings, stop, tuning=tuning, redis=real_redis))
        try:
            for pf in ("pf_reject", "pf_fail"):
                url = fake_slack.response_url(pf)
                result.commands[pf] = await queue_command(
                    real_redis, Action.REBALANCE, pf, response_url=url
                )
            result.replies = await fake_slack.wait_for(RESPONSE, 2, within=20)
            result.alerts = await fake_slack.wait_for(
                "chat.postMessage", where=lambda c: c.payload.get("channel") == ONCALL, within=20
            )
            hooks = await receiver.wait_for("hook", 3, within=20)  # submitted, failed, rejected
        finally:
            stop.set()
            await asyncio.wait_for(worker, timeout=15)
            unregister_secrets([s for s in settings.secret_values() if s != KEY])
    result.webhooks = [h.body for h in hooks] + [json.dumps(h.headers).encode() for h in hooks]
    admin = await admin_client(aiohttp_client, real_redis)
    listed = await admin.get("/operations", headers=AUTH)  # /v1/operations on the web
    assert listed.status == 200
    result.operations = await listed.text()
    result.logs = list(log_lines.lines)
    return result


def _reply_for(run: Run, pf: str) -> SlackCall:
    (call,) = [c for c in run.replies if c.path.endswith(f"/{pf}")]
    return call


async def test_a_several_kb_glider_error_reaches_the_requester_and_on_call(run: Run) -> None:
    """A 6 KB Glider error: the requester and on-call hear of it in valid, cut messages."""
    for pf in ("pf_reject", "pf_fail"):
        reply = _reply_for(run, pf)
        assert reply.ok
        assert f"`{pf}`" in reply.payload["text"]
        assert "…" in reply.payload["text"]
        assert "&lt;&amp;&gt;" in reply.payload["text"]
    (alert,) = run.alerts
    assert alert.ok
    assert "pf_fail" in alert.payload["text"]
    assert "swap refused" in alert.payload["text"]


async def test_webhook_bodies_stay_bounded(run: Run) -> None:
    """Each delivery body holds a cut error, far from the 6 KB Glider sent."""
    bodies = [json.loads(b) for b in run.webhooks if b.startswith(b'{"type"')]
    assert {b["type"] for b in bodies} >= {"rebalance.rejected", "rebalance.failed"}
    for body, raw in zip(bodies, run.webhooks, strict=False):
        assert len(raw) <= EVENT_BODY_BYTES
        if body["data"]["error"]:
            assert len(body["data"]["error"]["message"]) <= ERROR_TEXT_CHARS
            assert "…" in body["data"]["error"]["message"]


def _slack_text(calls: list[SlackCall]) -> str:
    return json.dumps([c.payload for c in calls])


async def test_an_echoed_api_key_leaves_by_no_door(run: Run) -> None:
    """The key Glider echoed is in no webhook, no admin answer, no Slack message, no log."""
    doors: dict[str, Any] = {
        "webhooks": b"".join(run.webhooks).decode(),
        "/v1/operations": run.operations,
        "slack": _slack_text(run.replies + run.alerts),
        "logs": "\n".join(run.logs),
    }
    for door, text in doors.items():
        assert KEY not in text, door
    # It was echoed, and redacted: the reason still reads around it.
    assert "for key [REDACTED]" in run.operations
    assert "for key [REDACTED]" in doors["slack"]
    assert "for key [REDACTED]" in doors["webhooks"]
