"""The relay's Slack client: Web API calls with the bot token, and ``response_url`` posts.

Both retry the same way: a 429 or any 5xx waits for ``Retry-After`` when Slack
sends one (else capped exponential backoff with jitter), and so does a dropped
connection. A wait longer than ``max_wait_s`` is not slept through in-process:
the call fails, and the stream entry that asked for it is retried later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from relay.core.backoff import backoff_delay, parse_retry_after, retry_wait
from relay.core.timeouts import exact_timeout
from relay.settings import Settings
from relay.slack import response_urls

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
TIMEOUT_S = 10


def retry_wait_for(
    status: int, retry_after: float | None, attempt: int, *, max_wait_s: float
) -> float | None:
    """Seconds to wait before retry ``attempt`` (1-based) of an answer, or None: don't retry.

    429 and 5xx are retried: after ``Retry-After`` when given, else after capped
    exponential backoff; never when the wait would exceed ``max_wait_s``.
    """
    if not (status == 429 or status >= 500):
        return None
    wait = retry_wait(attempt, retry_after, cap=max_wait_s)
    return wait if wait <= max_wait_s else None


def _header_retry_after(response: HttpResponse) -> float | None:
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            return parse_retry_after(str(values[0]))
    return None


class SlackRetryHandler(AsyncRetryHandler):
    """slack_sdk retry handler applying :func:`retry_wait_for` to Web API answers."""

    def __init__(self, *, max_retries: int = 4, max_wait_s: float = 60.0, sleep: Sleep) -> None:
        super().__init__(max_retry_count=max_retries)
        self._max_wait_s = max_wait_s
        self._sleep = sleep

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float | None:
        if response is None:
            return None
        return retry_wait_for(
            response.status_code,
            _header_retry_after(response),
            state.current_attempt + 1,
            max_wait_s=self._max_wait_s,
        )

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return self._wait(state, response) is not None

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = self._wait(state, response) or 0.0
        status = response.status_code if response is not None else None
        log.info("Slack answered %s; retrying in %.1f s", status, wait)
        state.next_attempt_requested = True
        await self._sleep(wait)
        state.increment_current_attempt()


def retry_handlers(
    *, max_retries: int = 4, max_wait_s: float = 60.0, sleep: Sleep = asyncio.sleep
) -> list[AsyncRetryHandler]:
    """The retry policy every Slack call of the relay uses."""
    return [
        SlackRetryHandler(max_retries=max_retries, max_wait_s=max_wait_s, sleep=sleep),
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
    ]


class SlackApi:
    """Slack for the worker: ``web`` (None without a bot token) and ``post_response``."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None,
        max_retries: int = 4,
        max_wait_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        response_url_hosts: frozenset[str] = response_urls.DEFAULT_HOSTS,
    ) -> None:
        self.response_url_hosts = response_url_hosts
        self._session = aiohttp.ClientSession(timeout=exact_timeout(total=TIMEOUT_S))
        self._max_retries = max_retries
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self.web: AsyncWebClient | None = None
        if token:
            self.web = AsyncWebClient(
                token=token,
                base_url=base_url,
                timeout=TIMEOUT_S,
                session=self._session,
                retry_handlers=retry_handlers(
                    max_retries=max_retries, max_wait_s=max_wait_s, sleep=sleep
                ),
            )

    async def post_response(self, url: str, message: dict[str, Any]) -> int:
        """POST ``message`` to a command's ``response_url``; returns Slack's last HTTP status.

        Connection errors past the retries propagate as ``aiohttp.ClientError``. A URL
        whose host is not in ``response_url_hosts`` is never contacted: it raises
        :class:`relay.slack.response_urls.DisallowedResponseUrl`.
        """
        response_urls.check(url, self.response_url_hosts)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._session.post(url, json=message) as response:
                    await response.read()
                    status = response.status
                    after = parse_retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt > self._max_retries:
                    raise
                await self._sleep(backoff_delay(attempt, cap=self._max_wait_s))
                continue
            wait = retry_wait_for(status, after, attempt, max_wait_s=self._max_wait_s)
            if wait is None or attempt > self._max_retries:
                return status
            log.info("response_url answered %s; retrying in %.1f s", status, wait)
            await self._sleep(wait)

    async def close(self) -> None:
        await self._session.close()


def create_slack_api(
    settings: Settings,
    *,
    max_retries: int = 4,
    max_wait_s: float = 60.0,
    sleep: Sleep = asyncio.sleep,
) -> SlackApi:
    """The one way a :class:`SlackApi` is built from the settings: ``SLACK_API_URL``, the bot
    token, ``SLACK_RESPONSE_URL_HOSTS``; each caller picks how patient its retries are."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return SlackApi(
        base_url=str(settings.slack_api_url),
        token=token,
        max_retries=max_retries,
        max_wait_s=max_wait_s,
        sleep=sleep,
        response_url_hosts=settings.response_url_hosts,
    )


def slack_error(exc: SlackApiError) -> str:
    """The ``error`` Slack answered (``not_in_channel``, ``ratelimited``, ...), or ""."""
    try:
        return str(exc.response.get("error") or "")
    except AttributeError:
        return ""
