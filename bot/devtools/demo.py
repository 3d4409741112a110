"""``glider-relay demo``: ``dev`` plus a scripted run a newcomer can read.

A subscription to a local receiver is created through the admin API; a signed
``/rebalance`` goes in and its events come out at the receiver, signature
verified; a second ``/rebalance`` fails in the simulator and on-call hears of
it. Every step is printed. Exit 0 within 30 s, or non-zero naming the failed step.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.devtools.demo_approval import DEMO_USER, approval_story, with_demo_policy
from bot.devtools.demo_oncall import oncall_story
from bot.devtools.dev import DevStack, start_stack
from bot.devtools.slack_standin import (
    SlackMessage,
    button_value,
    message_text,
    signed_click,
    signed_slash_command,
)
from relay.logs import configure_logging
from relay.settings import ConfigError, load_settings
from relay.sim.config import PF_MAIN, PF_SHORT, SimConfig

TOTAL_BUDGET_S = 30.0
STEP_TIMEOUT_S = 12.0
FAILURE_REASON = "slippage above the strategy's 50 bps limit"


def _card_final(message: SlackMessage, request_id: str) -> bool:
    """``message`` is ``request_id``'s job card in a final state (contract §9)."""
    metadata = message.payload.get("metadata")
    card = metadata.get("event_payload", {}) if isinstance(metadata, dict) else {}
    return card.get("request_id") == request_id and card.get("state") == "completed"


class DemoFailed(Exception):
    """A step did not happen in time; the message says which."""


@dataclass
class Receiver:
    """A webhook consumer on loopback that verifies Standard Webhooks signatures."""

    secret: bytes = b""
    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def verify(self, headers: Any, body: bytes) -> bool:
        """What a consumer does: HMAC-SHA256 over ``id.timestamp.body``, any ``v1,`` may match."""
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(self.secret, signed, hashlib.sha256).digest())
        offered = [s.split(",", 1)[1].encode() for s in headers["webhook-signature"].split()]
        return any(hmac.compare_digest(expected, sig) for sig in offered)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.verify(request.headers, body):
            return web.Response(status=400, text="bad signature")
        event = json.loads(body) | {"_webhook_id": request.headers["webhook-id"]}
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()
        return web.Response(status=204)

    async def wait_for(self, event_type: str, request_id: str) -> dict[str, Any]:
        async with self._arrived:
            while True:
                for event in self.events:
                    if event["type"] == event_type and event["data"]["requestId"] == request_id:
                        return event
                await self._arrived.wait()


class Demo:
    """The scripted run; :meth:`step` bounds and narrates each wait."""

    def __init__(self, stack: DevStack, receiver: Receiver, http: aiohttp.ClientSession) -> None:
        self.stack, self.receiver, self.http = stack, receiver, http
        self.started = time.monotonic()
        self.admin = {"Authorization": f"Bearer {_secret(stack.settings.relay_admin_token)}"}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.2f}s] {text}", flush=True)

    async def step(self, what: str, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                return await awaitable
        except TimeoutError:
            raise DemoFailed(f"timed out waiting for: {what}") from None

    async def subscribe(self) -> None:
        body = {"url": self.receiver.url, "events": ["*"], "description": "demo receiver"}
        async with self.http.post(
            f"{self.stack.web_url}/v1/subscriptions", json=body, headers=self.admin
        ) as response:
            created = await response.json()
            if response.status != 201:
                raise DemoFailed(f"creating the subscription answered {response.status}: {created}")
        self.receiver.secret = base64.b64decode(created["secret"].removeprefix("whsec_"))
        self.say(f"subscribed {self.receiver.url} to every event as {created['id']}")

    async def send_slash(self, text: str) -> dict[str, Any]:
        """POST ``/rebalance text`` signed like Slack; the ack."""
        response_url = self.stack.slack.response_url()
        body, headers = signed_slash_command(
            _secret(self.stack.settings.slack_signing_secret),
            command="/rebalance",
            text=text,
            user_id=DEMO_USER,
            response_url=response_url,
            trigger_id=f"demo-{time.monotonic_ns()}",
        )
        async with self.http.post(
            f"{self.stack.web_url}/slack/events", data=body, headers=headers
        ) as response:
            ack: dict[str, Any] = await response.json()
            if response.status != 200:
                raise DemoFailed(f"/rebalance {text} answered {response.status}")
        self.say(f"Slack ack (ephemeral): {ack.get('text', '')}")
        return ack

    async def slash(self, text: str) -> str:
        """Send ``/rebalance text`` (confirming a preview); the request id the answer names."""
        ack = await self.send_slash(text)
        text_shown = str(ack.get("text", ""))
        token = button_value(ack, "rebalance.confirm")
        if token is not None:
            self.say("the preview asks for confirmation; clicking Confirm (signed like Slack)")
            text_shown = await self.confirm(token, text)
        words = text_shown.replace("`", " ").replace("*", " ").split()
        request_id = next((word for word in words if word.startswith("req_")), "")
        if not request_id:
            raise DemoFailed(f"the ack names no request id: {ack}")
        return request_id

    async def slash_preview(self, text: str) -> str:
        """Send ``/rebalance text`` and confirm its preview; what replaced the preview."""
        ack = await self.send_slash(text)
        token = button_value(ack, "rebalance.confirm")
        if token is None:
            raise DemoFailed(f"no preview with a Confirm button: {ack}")
        return await self.confirm(token, text)

    def failed(self, why: str) -> DemoFailed:
        return DemoFailed(why)

    async def confirm(self, token: str, portfolio_id: str) -> str:
        """Click the preview's Confirm button; return what replaced the preview."""
        replaced = await self.click("rebalance.confirm", token, DEMO_USER, f"`{portfolio_id}`")
        self.say(f"preview replaced: {replaced.text}")
        return replaced.text

    async def click(self, action_id: str, value: str, user_id: str, expect: str) -> SlackMessage:
        """Click a button as ``user_id`` (signed like Slack); the answer containing ``expect``."""
        response_url = self.stack.slack.response_url()
        before = {id(m) for m in self.stack.slack.messages}
        body, headers = signed_click(
            _secret(self.stack.settings.slack_signing_secret),
            action_id=action_id,
            value=value,
            user_id=user_id,
            response_url=response_url,
        )
        async with self.http.post(
            f"{self.stack.web_url}/slack/events", data=body, headers=headers
        ) as response:
            if response.status != 200:
                raise DemoFailed(f"the {action_id} click answered {response.status}")

        def answered(message: SlackMessage) -> bool:
            new = id(message) not in before and message.via == "response_url"
            return new and expect in message.text

        found: SlackMessage = await self.step(
            f"answer to {action_id}", self.stack.slack.wait_for(answered)
        )
        return found

    async def webhook(self, event_type: str, request_id: str) -> dict[str, Any]:
        arrival = self.receiver.wait_for(event_type, request_id)
        event: dict[str, Any] = await self.step(f"webhook {event_type}", arrival)
        data = event["data"]
        detail = f"operation {data['operationId']}" if data.get("operationId") else ""
        if data.get("error"):
            detail = f"error {data['error']['code']}: {data['error']['message']}"
        self.say(
            f"webhook {event_type} delivered, signature verified "
            f"(webhook-id {event['_webhook_id']}) {detail}".rstrip()
        )
        return event

    async def slack_message(self, what: str, predicate: Callable[[SlackMessage], bool]) -> None:
        message = await self.step(what, self.stack.slack.wait_for(predicate))
        self.say(f"{what}: {message_text(message)}")

    def _operation_polls(self) -> int:
        journal = self.stack.sim.context.chaos.journal
        return sum(1 for r in journal if r.method == "GET" and "/operations/" in r.path)

    async def run(self) -> None:
        await self.subscribe()
        self.say(f"sending /rebalance {PF_MAIN} (signed like Slack)")
        ok_id = await self.slash(PF_MAIN)
        self.say(f"queued as {ok_id}")
        await self.webhook("rebalance.requested", ok_id)
        await self.webhook("rebalance.submitted", ok_id)
        self.say("the poller tracks the operation until Glider says it is terminal")
        await self.webhook("rebalance.completed", ok_id)
        self.say(f"Glider was polled {self._operation_polls()} time(s) for it")
        await self.slack_message(
            "its job card, kept current in the channel", lambda m: _card_final(m, ok_id)
        )
        self.stack.sim.context.state.force_outcome(PF_SHORT, "failed", error=FAILURE_REASON)
        self.say(f"sending /rebalance {PF_SHORT}; the simulator will fail this one")
        bad_id = await self.slash(PF_SHORT)
        await self.webhook("rebalance.failed", bad_id)
        oncall = self.stack.settings.oncall_slack_channel
        if oncall is None:
            raise self.failed("no on-call channel is configured")
        await oncall_story(self, oncall)
        await approval_story(self)
        self.say("demo complete: every step happened")


def _secret(value: Any) -> str:
    return str(value.get_secret_value()) if value is not None else ""


async def start_receiver(receiver: Receiver) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/hooks/glider", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hooks/glider"
    return runner


async def run_demo() -> None:
    """The whole scripted run; raises :class:`DemoFailed` naming the step that did not happen."""
    env = with_demo_policy(load_settings())
    sim_config = SimConfig.default().with_overrides(op_duration_s=2.0)
    stack = await start_stack(env, port=0, sim_port=0, sim_config=sim_config)
    receiver = Receiver()
    receiver_runner = await start_receiver(receiver)
    print(
        f"glider-relay demo: web {stack.web_url}, Glider simulator {stack.sim.url}, "
        f"{'embedded store (nothing persists)' if stack.embedded else 'Redis'}",
        flush=True,
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(TOTAL_BUDGET_S):
            await Demo(stack, receiver, http).run()
    except TimeoutError:
        raise DemoFailed(f"the demo took longer than {TOTAL_BUDGET_S:.0f} s") from None
    finally:
        await receiver_runner.cleanup()
        await stack.close()
        if env.relay_policy_file is not None:
            env.relay_policy_file.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``glider-relay demo``: 0 when every step happened."""
    try:
        configure_logging(args.log_level)
        asyncio.run(run_demo())
    except (DemoFailed, ConfigError) as exc:
        print(f"glider-relay demo FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``glider-relay demo``."""
    parser = subparsers.add_parser("demo", help="dev plus a scripted run, every step printed")
    parser.add_argument("--log-level", default="WARNING", help="worker/web logs (default WARNING)")
    parser.set_defaults(func=run)
