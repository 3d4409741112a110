"""The bot's slash commands over HTTP, answered without Bolt's dispatch (issue 16: the ack).

For a slash command Bolt spends more CPU than the rest of the ack together: a request
object that parses the body again, every global middleware, a matcher per listener, and
a kwargs injection that inspects the listener's signature on each call (docs/ack-profile.md).
For the three commands the bot serves, over HTTP, ``/slack/events`` does what Bolt did
for them itself:

- verification: :mod:`bot.signature`'s check has passed, and Bolt's own verifier
  (slack_sdk's ``SignatureVerifier``, what Bolt's ``RequestVerification`` runs) must
  agree, signature and 5-minute window;
- authorisation: the bot's ``authorize`` (bot/app.py) accepts every request and only
  hands the bot token to Bolt's client, which the command listener never uses;
- the answer: the listener's very code (:func:`bot.app.command_payload`), and the HTTP
  response Bolt makes of ``ack(payload)`` (its JSON, ``application/json``).

Everything else (interactivity, events, ``ssl_check``, a command the bot does not serve,
Socket Mode) still goes through Bolt.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDictProxy
from slack_sdk.signature import SignatureVerifier

from bot.app import command_payload
from bot.handlers import Commands
from bot.parse import command_name
from relay.core import trace

_SIGNATURE, _TIMESTAMP = "X-Slack-Signature", "X-Slack-Request-Timestamp"


def command_form(body: bytes) -> dict[str, str] | None:
    """The form of a slash command the bot serves, as Bolt would read it; else None.

    None for anything Bolt must see: a JSON body, an interactivity ``payload``, Slack's
    ``ssl_check``, another command, a body that is not UTF-8. The name matches in any case.
    """
    if body.startswith(b"{"):
        return None
    try:
        raw = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    form = parse_form(raw)
    if "payload" in form or "ssl_check" in form:
        return None
    return form if command_name(form.get("command", "")) is not None else None


def parse_form(raw: str) -> dict[str, str]:
    """``dict(parse_qsl(raw, keep_blank_values=True))`` (Bolt's read of a form), in less CPU:
    most of a command's fields need no unquoting, and are not sent through it."""
    form: dict[str, str] = {}
    for pair in raw.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            form[_unquote(name)] = _unquote(value)
    return form


def _unquote(part: str) -> str:
    if "+" in part:
        part = part.replace("+", " ")
    return unquote(part) if "%" in part else part


class SlashCommands:
    """``verified(body, headers)``, then ``await answer(request, form)``: one command's ack."""

    def __init__(self, commands: Commands, signing_secret: str) -> None:
        self._commands = commands
        self._verifier = SignatureVerifier(signing_secret)  # Bolt's own

    def verified(self, body: bytes, headers: CIMultiDictProxy[str]) -> bool:
        """Bolt's verification of the request: signature and timestamp window."""
        timestamp, signature = headers.get(_TIMESTAMP), headers.get(_SIGNATURE)
        return self._verifier.is_valid(body, timestamp, signature)

    async def answer(self, request: web.Request, form: dict[str, str]) -> web.Response:
        """The ack of a verified command: the reply, once the command is durable."""
        payload = await command_payload(
            self._commands,
            form,
            traceparent=request.headers.getall(trace.HEADER, []),
            signature=request.headers.get(_SIGNATURE),
        )
        # What Bolt's ack(payload) answers: json.dumps of it, as application/json (no charset).
        return web.Response(body=json.dumps(payload).encode(), content_type="application/json")
