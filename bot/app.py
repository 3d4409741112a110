"""The Bolt app: request verification, a token-only authorisation, the three listeners.

``process_before_response=True`` makes the ack the HTTP response itself, sent
when the listener returns, so the Redis write always happens before Slack hears
"queued". Authorisation is local (no ``auth.test`` round trip to Slack), so an
ack never waits on, or fails with, Slack's Web API.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import (
    warning_client_prioritized_and_token_skipped,
    warning_token_skipped,
)
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.deadline import Deadline
from bot.handlers import Commands
from bot.home import HomeTab
from bot.home_messages import ACTIONS as HOME_ACTIONS
from bot.interactive import Click, Clicks
from bot.listing import Lister
from bot.parse import COMMAND_PATTERN
from bot.signature import replay_key
from relay import tracing
from relay.core import trace
from relay.core.listing import parse_offset
from relay.settings import ConfigError, Settings

log = logging.getLogger(__name__)


def _authorize(settings: Settings) -> Callable[..., Awaitable[AuthorizeResult]]:
    bot_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None

    async def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        # One workspace, one bot token: the result only carries it to the listener's client.
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=bot_token
        )

    return authorize


def require_signing_secret(settings: Settings) -> None:
    """HTTP mode cannot run without a signing secret (an empty one would trust anyone)."""
    if settings.slack_signing_secret is None and not settings.socket_mode:
        raise ConfigError("SLACK_SIGNING_SECRET is required for the Slack HTTP endpoint")


def with_dedupe_id(command: dict[str, Any], signature: str | None) -> dict[str, Any]:
    """``command`` with a ``trigger_id`` to deduplicate on: Slack's, else the signature's.

    The enqueue is idempotent on ``trigger_id``; a signed command without one, replayed
    inside the 5-minute window, would queue again. Socket Mode has no signature (and
    Slack redelivers there by envelope), so it keeps what it has.
    """
    if command.get("trigger_id"):
        return command
    key = replay_key(signature)
    return command if key is None else {**command, "trigger_id": key}


async def command_payload(
    commands: Commands, command: dict[str, Any], *, traceparent: object, signature: str | None
) -> dict[str, Any]:
    """The ack of one slash command (Bolt's ``command``), in the trace of Slack's
    ``traceparent`` header values (none: a new trace); ``signature`` is the request's."""
    deadline = Deadline.within()  # the command has arrived: Slack's 3 s run from here
    parent = trace.parse(trace.first_header(traceparent))
    name = f"slack {command.get('command', '')}"[:64]
    with tracing.span(name, parent, kind=tracing.SpanKind.SERVER):
        reply = await commands.reply(with_dedupe_id(command, signature), deadline)
    return reply.payload()


# Bolt's notes about how it was built: not news here (the bot token is ours to use, on our
# client; SLACK_BOT_TOKEN in the environment makes Bolt say so at every start).
_CONFIG_NOTES = frozenset({warning_client_prioritized_and_token_skipped(), warning_token_skipped()})


class BoltNoise(logging.Filter):
    """Drops Bolt's construction notes, and makes its many-line "Unhandled request ...
    [Suggestion] @app.command(...)" code sample one WARNING line without the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in _CONFIG_NOTES:
            return False
        if message.startswith("Unhandled request"):
            record.msg = "refused Slack request: %s"
            record.args = ("no handler for it (a command or event this app does not serve)",)
            record.reason = "unhandled"
        return True


def bolt_logger() -> logging.Logger:
    """The logger Bolt writes to, with :class:`BoltNoise` on it (once)."""
    logger = logging.getLogger("bot.bolt")
    if not any(isinstance(f, BoltNoise) for f in logger.filters):
        logger.addFilter(BoltNoise())
    return logger


def create_bolt_app(settings: Settings, commands: Commands) -> AsyncApp:
    """The Bolt ``AsyncApp`` with /rebalance, /pause and /resume bound to ``commands``."""
    require_signing_secret(settings)
    secret = settings.slack_signing_secret
    app = AsyncApp(
        signing_secret=secret.get_secret_value() if secret else "",
        client=AsyncWebClient(base_url=str(settings.slack_api_url)),
        authorize=_authorize(settings),
        process_before_response=True,
        logger=bolt_logger(),
        # Slash commands, clicks and one event (app_home_opened): request verification,
        # Slack's ssl_check and the Events API's url_verification stay; the AI-assistant
        # middleware goes.
        url_verification_enabled=True,
        ignoring_self_events_enabled=False,
        attaching_function_token_enabled=False,
        attaching_conversation_kwargs_enabled=False,
    )

    async def on_command(ack: AsyncAck, command: dict[str, Any], request: AsyncBoltRequest) -> None:
        # Socket Mode's commands (over HTTP, bot/slash_http.py answers them first). Slack's
        # traceparent, if it sent one (Socket Mode has no headers): else a new trace.
        headers = request.headers
        signature = next(iter(headers.get("x-slack-signature", ())), None)
        traceparent = headers.get(trace.HEADER)
        await ack(
            await command_payload(commands, command, traceparent=traceparent, signature=signature)
        )

    clicks = Clicks(commands, commands.access)
    home = HomeTab(
        commands.redis,
        commands.lister or Lister(commands.redis, commands.glider),
        commands.slack,
        commands.access,
    )

    async def on_home_opened(event: dict[str, Any]) -> None:
        # Bolt acks the event when this returns: the Glider calls run after, in the background.
        user = event.get("user")
        if event.get("tab", "home") != "home" or not isinstance(user, str) or not user:
            return
        commands.background.spawn(home.publish(user[:32]), name="home")

    async def on_action(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        # Acked with nothing (the message stays); answers go to the response_url. Bolt sends
        # the ack once this returns (process_before_response), so the click's work draws
        # on the same kind of deadline as a command's.
        deadline = Deadline.within()
        await ack()
        click = Click.of(body, action)
        if click is None:
            log.info("block_actions payload ignored: not a click the bot understands")
            return
        if click.action_id in HOME_ACTIONS:
            offset = parse_offset(click.value)
            if offset is None or not click.user_id:
                log.warning("home page click refused: not a page of the list")
                return
            commands.background.spawn(home.publish(click.user_id, offset), name="home-page")
            return
        await clicks.handle(click, deadline)

    app.command(COMMAND_PATTERN)(on_command)  # /rebalance, /pause, /resume in any case
    app.event("app_home_opened")(on_home_opened)
    # Every action id: the bot's own, and anything else, which is answered harmlessly.
    app.action(re.compile(r".*"))(on_action)
    return app
