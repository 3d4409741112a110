"""Slash commands over HTTP without Bolt's dispatch: what is answered here, and how."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.slash_http import command_form, parse_form
from bot.web import BOLT
from tests.fixtures.slack import signed_command
from tests.fixtures.web import WebFactory

_FORM_TEXT = st.text(st.sampled_from("ab=&+%2F41zé "), max_size=40)


@given(_FORM_TEXT)
def test_a_form_is_read_as_parse_qsl_reads_it(raw: str) -> None:
    """Any body, escapes and blanks included, gives Bolt's own reading of it."""
    assert parse_form(raw) == dict(parse_qsl(raw, keep_blank_values=True))


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=6))
def test_an_encoded_form_reads_back(form: dict[str, str]) -> None:
    """What Slack sends (urlencoded fields) reads back field for field."""
    assert parse_form(urlencode(form)) == dict(parse_qsl(urlencode(form), keep_blank_values=True))


def test_only_the_bots_own_commands_are_answered_here() -> None:
    """/rebalance, /pause, /resume forms only; everything else is Bolt's."""
    for name in ("/rebalance", "/pause", "/resume"):
        form = command_form(signed_command(name, "pf_1").body.encode())
        assert form is not None
        assert form["command"] == name
        assert form["text"] == "pf_1"
    assert command_form(signed_command("/deploy", "pf_1").body.encode()) is None
    assert command_form(b'{"type": "url_verification", "command": "/rebalance"}') is None
    assert command_form(b"command=%2Frebalance&payload=%7B%7D") is None
    assert command_form(b"ssl_check=1&command=%2Frebalance") is None
    assert command_form(b"command=%2Frebalance&text=\xff") is None


async def test_the_ack_is_the_http_answer_bolt_gives(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """Same status, content type and reply shape as the Bolt listener's ack of a command."""
    web = await web_factory(any_redis)
    ours = await web.post(web.sign("/pause", "pf_1 maintenance"))
    signed = web.sign("/pause", "pf_2 maintenance")
    headers: dict[str, str | Sequence[str]] = dict(signed.headers)
    request = AsyncBoltRequest(body=signed.body, headers=headers)
    bolt = await to_aiohttp_response(await web.client.app[BOLT].async_dispatch(request))
    assert (ours.status, ours.headers["Content-Type"]) == (200, bolt.content_type)
    assert bolt.charset is None
    ack, bolt_ack = json.loads(await ours.text()), json.loads(bolt.text or "")
    assert ack.keys() == bolt_ack.keys() == {"text", "blocks", "response_type"}
    assert ack["text"].startswith("Queued pausing automation of `pf_1`")
    assert bolt_ack["text"].startswith("Queued pausing automation of `pf_2`")
    assert len(await web.queued()) == 2


async def test_command_names_are_case_insensitive(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """/REBALANCE HELP is help and /Pause queues (docs/contract.md §4.2), over the HTTP
    fast path and through Bolt's own listener alike."""
    web = await web_factory(any_redis)
    help_ack = await web.command("/REBALANCE", "HELP")
    assert "/rebalance status" in json.dumps(help_ack)
    paused = await web.command("/Pause", "pf_1 quiet hours")
    assert paused["text"].startswith("Queued pausing automation of `pf_1`")
    signed = web.sign("/RESUME", "pf_1")
    headers: dict[str, str | Sequence[str]] = dict(signed.headers)
    request = AsyncBoltRequest(body=signed.body, headers=headers)
    bolt = await to_aiohttp_response(await web.client.app[BOLT].async_dispatch(request))
    assert bolt.status == 200
    assert json.loads(bolt.text or "")["text"].startswith("Queued resuming automation of `pf_1`")
    assert [(c.action.value, c.portfolio_id) for c in await web.queued()] == [
        ("pause", "pf_1"),
        ("resume", "pf_1"),
    ]
