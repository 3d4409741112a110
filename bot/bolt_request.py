"""Bolt's request for an aiohttp request, with a slash command's form read as a form.

Bolt takes any body that contains the text ``payload`` for an interactivity
payload (``payload=<json>``); finding no such field, it reads the body as empty
and the command goes unhandled (a 404 to Slack). A user named ``payloadbot``, or
``/pause pf_1 payload migration``, was enough.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_bolt_request
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest


async def bolt_request(request: web.Request) -> AsyncBoltRequest:
    """What Bolt should see; raises ValueError when the body is not text Bolt can parse."""
    bolt = await to_bolt_request(request)
    raw = bolt.raw_body
    if "payload" in raw and not bolt.body and not raw.startswith("{"):
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if "payload" not in form:
            bolt.body = form
            bolt.context = build_async_context(AsyncBoltContext({}), form)
    return bolt
