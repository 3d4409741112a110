"""Slack client: Web API and response_url posts retried per Retry-After on 429 and 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError

from relay.settings import load_settings
from relay.slack.client import SlackApi, create_slack_api, retry_wait_for
from tests.fixtures.slack import BOT_TOKEN, LOOPBACK_HOST, RESPONSE, FakeSlack


class RecordedSleep:
    """Stands in for asyncio.sleep: remembers each wait, returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
async def slack(fake_slack: FakeSlack, sleeps: RecordedSleep) -> AsyncIterator[SlackApi]:
    settings = load_settings(
        slack_api_url=fake_slack.api_url,
        slack_bot_token=BOT_TOKEN,
        slack_response_url_hosts=LOOPBACK_HOST,
    )
    api = create_slack_api(settings, sleep=sleeps)
    try:
        yield api
    finally:
        await api.close()


async def test_web_call_waits_retry_after_then_succeeds(
    slack: SlackApi, fake_slack: FakeSlack, sleeps: RecordedSleep
) -> None:
    """A 429 with Retry-After: 3 is retried after exactly that wait."""
    fake_slack.fail_next(1, status=429, retry_after=3, method="chat.postMessage")
    assert slack.web is not None
    response = await slack.web.chat_postMessage(channel="C1", text="hello")
    assert response["ok"] is True
    assert sleeps.waits == [3.0]
    assert [c.status for c in fake_slack.calls] == [429, 200]
    assert fake_slack.calls[-1].token == BOT_TOKEN


async def test_server_errors_are_retried_with_backoff(
    slack: SlackApi, fake_slack: FakeSlack, sleeps: RecordedSleep
) -> None:
    """5xx answers without Retry-After are retried after a computed backoff."""
    fake_slack.fail_next(2, status=500, retry_after=None)
    assert slack.web is not None
    await slack.web.conversations_open(users="U1")
    assert len(sleeps.waits) == 2
    assert all(0 <= wait <= 60 for wait in sleeps.waits)
    assert [c.status for c in fake_slack.calls] == [500, 500, 200]


async def test_response_url_post_is_retried(
    slack: SlackApi, fake_slack: FakeSlack, sleeps: RecordedSleep
) -> None:
    """A response_url answering 503 then 200 gets the message once, after one retry."""
    fake_slack.fail_next(1, status=503, retry_after=2, method=RESPONSE)
    status = await slack.post_response(fake_slack.response_url("r1"), {"text": "done"})
    assert status == 200
    assert sleeps.waits == [2.0]
    [delivered] = fake_slack.calls_to(RESPONSE)
    assert delivered.payload["text"] == "done"


async def test_too_long_retry_after_is_not_slept_through(
    slack: SlackApi, fake_slack: FakeSlack, sleeps: RecordedSleep
) -> None:
    """A Retry-After beyond the in-process limit fails the call instead of blocking."""
    fake_slack.fail_next(1, status=429, retry_after=3600)
    assert slack.web is not None
    with pytest.raises(SlackApiError) as caught:
        await slack.web.chat_postMessage(channel="C1", text="hello")
    assert caught.value.response.status_code == 429
    assert sleeps.waits == []


async def test_no_bot_token_means_no_web_client(fake_slack: FakeSlack) -> None:
    """Without SLACK_BOT_TOKEN only response_url replies are possible."""
    settings = load_settings(
        slack_api_url=fake_slack.api_url, slack_response_url_hosts=LOOPBACK_HOST
    )
    api = create_slack_api(settings)
    try:
        assert api.web is None
        assert await api.post_response(fake_slack.response_url(), {"text": "x"}) == 200
    finally:
        await api.close()


async def test_response_url_client_error_is_returned_not_retried(
    slack: SlackApi, fake_slack: FakeSlack, sleeps: RecordedSleep
) -> None:
    """A 404 from an expired response_url comes back at once for the caller to fall back."""
    fake_slack.fail_next(1, status=404, retry_after=None, method=RESPONSE)
    assert await slack.post_response(fake_slack.response_url(), {"text": "x"}) == 404
    assert sleeps.waits == []


def test_retry_wait_policy() -> None:
    """429/5xx retry after Retry-After or backoff within the cap; 4xx and long waits do not."""
    assert retry_wait_for(429, 7.0, 1, max_wait_s=60) == 7.0
    assert retry_wait_for(502, None, 1, max_wait_s=60) is not None
    assert retry_wait_for(400, None, 1, max_wait_s=60) is None
    assert retry_wait_for(404, 1.0, 1, max_wait_s=60) is None
    assert retry_wait_for(503, 61.0, 1, max_wait_s=60) is None
    waits = [retry_wait_for(500, None, n, max_wait_s=5) for n in range(1, 12)]
    assert all(w is not None and 0 <= w <= 5 for w in waits)
