"""Bolt's request for an aiohttp request, with a slash command's form read as a form.

Bolt takes any body that contains the text ``payload`` for an interactivity
payload (``payload=<json>``); finding no such field, it reads the body as empty
and the command goes unhandled (a 404 to Slack). A user named ``payloadbot``, or
``/pause pf_1 payload migration``, was enough.

Bolt also trusts an interactivity payload's shape: ``payload=1``, a JSON list, or a
``block_actions`` without actions raised inside it (a 500). Such payloads are refused
here, before Bolt reads them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_bolt_request
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

# Payload fields Bolt reads as objects (``body["user"]["id"]``, ...) when they are present:
# an Events API body's ``event`` too (its authorisation reads ``body["event"].get(...)``).
_OBJECT_FIELDS = (
    "team",
    "user",
    "channel",
    "container",
    "enterprise",
    "view",
    "message",
    "event",
)
# Payload fields Bolt reads as lists of objects (an Events API body's ``authorizations``).
_OBJECT_LIST_FIELDS = ("authorizations",)
# A slash command's fields, which the handlers read as text (a form makes them text).
_TEXT_FIELDS = ("command", "text", "user_id", "user_name", "team_id", "channel_id")


def check_payload(payload: Any) -> None:
    """Raise ValueError unless ``payload`` has the shape Bolt indexes into without checking.

    ``payload`` is an interactivity payload, or a whole JSON body (Bolt reads both alike).
    """
    if not isinstance(payload, dict):
        raise ValueError("an interactivity payload is a JSON object")
    if not isinstance(payload.get("type"), str):
        raise ValueError("an interactivity payload has a type")
    for name in _OBJECT_FIELDS:
        if payload.get(name) is not None and not isinstance(payload[name], dict):
            raise ValueError(f"an interactivity payload's {name} is an object")
    for name in _OBJECT_LIST_FIELDS:
        items = payload.get(name)
        if items is not None and not (
            isinstance(items, list) and all(isinstance(item, dict) for item in items)
        ):
            raise ValueError(f"a request's {name} is a list of objects")
    for name in _TEXT_FIELDS:
        if name in payload and not isinstance(payload[name], str):
            raise ValueError(f"a request's {name} is text")
    if payload["type"] == "block_actions":
        _check_actions(payload.get("actions"))


def _check_actions(actions: Any) -> None:
    if not (isinstance(actions, list) and actions):
        raise ValueError("block_actions carries at least one action")
    if not all(isinstance(action, dict) for action in actions):
        raise ValueError("each action is an object")
    if not all(isinstance(action.get("action_id"), str) for action in actions):
        raise ValueError("each action names its action_id")


def _check_form_payload(raw: str) -> None:
    form = dict(parse_qsl(raw))  # as Bolt reads it: a blank payload is no payload
    if "payload" in form:
        check_payload(json.loads(form["payload"]))


async def bolt_request(request: web.Request) -> AsyncBoltRequest:
    """What Bolt should see; raises ValueError when the body is not text Bolt can parse."""
    raw_text = (await request.read()).decode("utf-8")
    if raw_text.startswith("{"):  # Bolt reads any such body as JSON
        check_payload(json.loads(raw_text))
    elif "payload" in raw_text:
        _check_form_payload(raw_text)
    bolt = await to_bolt_request(request)
    raw = bolt.raw_body
    if "payload" in raw and not bolt.body and not raw.startswith("{"):
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if "payload" not in form:
            bolt.body = form
            bolt.context = build_async_context(AsyncBoltContext({}), form)
    return bolt
