"""The Slack test double behaves like Slack: signatures verify, calls answer and record."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fixtures.slack import BOT_TOKEN, RESPONSE, SIGNING_SECRET, FakeSlack, signed_command


def test_signed_command_verifies_with_slack_sdk() -> None:
    """A built request passes slack_sdk's own signature verifier."""
    req = signed_command("/rebalance", "pf_1")
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid_request(req.body, req.headers)


def test_signed_command_with_other_secret_does_not_verify() -> None:
    """A request signed with another secret is rejected by the verifier."""
    req = signed_command("/rebalance", "pf_1", secret="another-secret")
    assert not SignatureVerifier(SIGNING_SECRET).is_valid_request(req.body, req.headers)


def test_signed_command_form_fields() -> None:
    """The body carries every slash-command field Slack sends, trigger ids unique."""
    first = signed_command("/pause", "pf_1 maintenance", user_id="U9", trigger_id="t-1")
    second = signed_command("/pause", "pf_1")
    form = dict(parse_qsl(first.body))
    assert form["command"] == "/pause"
    assert form["text"] == "pf_1 maintenance"
    assert form["user_id"] == "U9"
    assert form["trigger_id"] == "t-1"
    assert {"team_id", "user_name", "channel_id", "response_url"} <= form.keys()
    assert second.form["trigger_id"] != first.form["trigger_id"]


def test_retry_header_is_added_on_request() -> None:
    """``retry_num`` adds Slack's retry headers."""
    req = signed_command("/rebalance", "pf_1", retry_num=1)
    assert req.headers["X-Slack-Retry-Num"] == "1"


async def test_fake_slack_answers_and_records_web_api_calls(fake_slack: FakeSlack) -> None:
    """chat.postMessage and conversations.open answer like Slack and are recorded."""
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    opened = await client.conversations_open(users="U7")
    posted = await client.chat_postMessage(channel=opened["channel"]["id"], text="hi &amp;")
    assert opened["channel"]["id"] == "DU7"
    assert posted["ok"] is True
    (call,) = await fake_slack.wait_for("chat.postMessage")
    assert call.payload["channel"] == "DU7"
    assert call.token == BOT_TOKEN


async def test_fake_slack_rejects_a_wrong_token(fake_slack: FakeSlack) -> None:
    """A call with another token gets ``invalid_auth`` like Slack."""
    client = AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await client.chat_postMessage(channel="C1", text="x")


async def test_fake_slack_fails_next_calls_with_retry_after(fake_slack: FakeSlack) -> None:
    """``fail_next`` answers 429 with Retry-After, then recovers."""
    fake_slack.fail_next(1, status=429, retry_after=7, method="chat.postMessage")
    url = fake_slack.api_url + "chat.postMessage"
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"channel": "C1", "text": "a"}, headers=headers) as r1:
            assert (r1.status, r1.headers["Retry-After"]) == (429, "7")
        async with session.post(url, json={"channel": "C1", "text": "b"}, headers=headers) as r2:
            assert r2.status == 200
    assert [c.status for c in fake_slack.calls_to("chat.postMessage", include_failed=True)] == [
        429,
        200,
    ]


async def test_response_url_receiver_records_posts(fake_slack: FakeSlack) -> None:
    """A POST to a response_url is recorded with its JSON body."""
    url = fake_slack.response_url("abc")
    webhook = AsyncWebhookClient(url)
    fake_slack.fail_next(1, status=500, method=RESPONSE)
    failed = await webhook.send(text="first")
    sent = await webhook.send(text="done", response_type="ephemeral")
    assert (failed.status_code, sent.status_code) == (500, 200)
    calls = await fake_slack.wait_for(RESPONSE, where=lambda c: c.path.endswith("/abc"))
    assert calls[0].payload["text"] == "done"


async def test_wait_for_is_bounded(fake_slack: FakeSlack) -> None:
    """Waiting for a call that never comes times out instead of hanging."""
    with pytest.raises(TimeoutError):
        await fake_slack.wait_for("chat.postMessage", within=0.05)


async def test_wait_for_wakes_on_a_later_call(fake_slack: FakeSlack) -> None:
    """A waiter started before the call returns once it arrives."""
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    waiter = asyncio.create_task(fake_slack.wait_for("chat.postEphemeral"))
    await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    (call,) = await waiter
    assert call.payload["user"] == "U1"


async def test_socket_mode_needs_an_app_level_token(fake_slack: FakeSlack) -> None:
    """apps.connections.open refuses the bot token and hands an xapp- token a WebSocket URL."""
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await AsyncWebClient(base_url=fake_slack.api_url).apps_connections_open(app_token=BOT_TOKEN)
    opened = await AsyncWebClient(base_url=fake_slack.api_url).apps_connections_open(
        app_token="xapp-1-x"
    )
    assert opened["url"].startswith("ws://127.0.0.1:")


async def test_fake_slack_refuses_blocks_slack_would_refuse(fake_slack: FakeSlack) -> None:
    """Over-long section text, 51 blocks, 11 context elements, an over-long ``text``: all
    refused as Slack does (``invalid_blocks``, ``msg_too_long``), and not counted as ok."""
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "ok"}}
    element = {"type": "mrkdwn", "text": "e"}
    bad: list[list[dict[str, Any]]] = [
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [section] * 51,
        [{"type": "context", "elements": [element] * 11}],
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": " "}}],
    ]
    for blocks in bad:
        with pytest.raises(SlackApiError, match="invalid_blocks"):
            await client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    with pytest.raises(SlackApiError, match="msg_too_long"):
        await client.chat_postMessage(channel="C1", text="t" * 40_001)
    with pytest.warns(UserWarning, match="text"), pytest.raises(SlackApiError, match="no_text"):
        await client.chat_postMessage(channel="C1", blocks=[section])
    assert fake_slack.calls_to("chat.postMessage") == []
    await client.chat_postMessage(channel="C1", text="fine", blocks=[section] * 50)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_response_url_refuses_invalid_blocks_with_400(fake_slack: FakeSlack) -> None:
    """A response_url answers 400 ``invalid_blocks`` to a message Slack would refuse."""
    webhook = AsyncWebhookClient(fake_slack.response_url("bad"))
    long_text = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    refused = await webhook.send(text="t", blocks=long_text)
    assert (refused.status_code, refused.body) == (400, "invalid_blocks")
    assert fake_slack.calls_to(RESPONSE) == []
