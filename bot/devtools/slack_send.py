"""``glider-relay slack send '/rebalance pf_x'``: a slash command as Slack would send it.

It signs the command with the configured ``SLACK_SIGNING_SECRET`` (Slack's v0
signature) and POSTs it to a running web's ``/slack/events``, then prints the
ack. For trying things out against ``dev`` (its banner prints the exact command)
or a local ``web``; nothing here talks to Slack.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from typing import Any

import aiohttp

from bot.devtools.slack_standin import SlackMessage, message_text, signed_slash_command
from relay.settings import ConfigError, load_settings

DEFAULT_USER = "U0LOCAL"
TIMEOUT_S = 10.0


def split_command(line: str) -> tuple[str, str]:
    """``'/rebalance pf_x'`` -> (``/rebalance``, ``pf_x``); raises ValueError without a ``/``."""
    command, _, text = line.strip().partition(" ")
    if not command.startswith("/") or len(command) < 2:
        raise ValueError(f"a slash command starts with /, e.g. '/rebalance pf_x' (got {line!r})")
    return command, text.strip()


def ack_text(status: int, payload: Any) -> str:
    """The ack's words: its blocks' text when it has them, else ``text``, else the status."""
    if isinstance(payload, dict):
        message = SlackMessage("ack", None, str(payload.get("text", "")), payload)
        return message_text(message) or f"HTTP {status} (empty ack)"
    return f"HTTP {status} (empty ack)"


async def send(url: str, secret: str, command: str, text: str, user: str) -> tuple[int, str]:
    """POST one signed slash command; the HTTP status and the ack's words."""
    body, headers = signed_slash_command(
        secret,
        command=command,
        text=text,
        user_id=user,
        response_url=None,
        trigger_id=f"local.{secrets.token_hex(8)}",
    )
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(f"{url.rstrip('/')}/slack/events", data=body, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, ack_text(response.status, await response.json())
        return response.status, (await response.text())[:500] or f"HTTP {response.status}"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``glider-relay slack send``: 0 when the web answered 200."""
    try:
        settings = load_settings().require("slack")
        command, text = split_command(args.command)
    except (ConfigError, ValueError) as exc:
        print(f"glider-relay slack send: {exc}", file=sys.stderr)
        return 2
    assert settings.slack_signing_secret is not None  # require() checked it
    url = args.url or f"http://127.0.0.1:{settings.port}"
    secret = settings.slack_signing_secret.get_secret_value()
    try:
        status, words = asyncio.run(send(url, secret, command, text, args.user))
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"glider-relay slack send: cannot reach {url}: {exc or 'timed out'}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"glider-relay slack send: {url} answered {status}: {words}", file=sys.stderr)
        return 1
    print(words)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``slack send``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "slack", help="act as Slack towards a running web (for trying things out)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    send_parser = actions.add_parser(
        "send", help="sign a slash command with SLACK_SIGNING_SECRET and POST it; print the ack"
    )
    send_parser.add_argument("command", metavar="'/COMMAND TEXT'", help="e.g. '/rebalance pf_x'")
    send_parser.add_argument(
        "--user", default=DEFAULT_USER, help=f"Slack user id it comes from (default {DEFAULT_USER})"
    )
    send_parser.add_argument("--url", help="the web's base URL (default: http://127.0.0.1:$PORT)")
    send_parser.set_defaults(func=run)
    return parser
