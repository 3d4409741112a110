"""Async client of the Glider v2 API: one keep-alive session, typed answers, careful retries.

Retries are for requests that are safe to send twice: reads, and start/stop
(they set a state, so repeating one changes nothing). A manual rebalance is
sent again only when it provably never left this process; anything else is
raised for the caller to decide, because a duplicate would start a second run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr
from yarl import URL

from relay import tracing
from relay.core.backoff import retry_wait
from relay.core.bounds import clip
from relay.core.timeouts import exact_timeout
from relay.glider.errors import GliderError, GliderTimeout, GliderUnavailable
from relay.glider.models import Operation, PortfolioDetail, RebalanceAccepted, Whoami
from relay.glider.responses import MAX_BODY_BYTES, MESSAGE_CHARS, ModelT, interpret, read_capped
from relay.logs import register_secrets
from relay.metrics import GLIDER_LATENCY, GLIDER_REQUESTS

log = logging.getLogger(__name__)

# The ``status`` label of a request that got no HTTP answer.
_NO_ANSWER: dict[type[GliderError], str] = {
    GliderTimeout: "timeout",
    GliderUnavailable: "connection",
}

# Route templates: what the logs show instead of the ids.
WHOAMI = "/v2/whoami"
PORTFOLIO = "/v2/portfolios/{portfolioId}"
REBALANCE = PORTFOLIO + "/rebalance"
START = PORTFOLIO + "/start"
STOP = PORTFOLIO + "/stop"
OPERATION = PORTFOLIO + "/operations/{operationId}"

Sleep = Callable[[float], Awaitable[None]]
BeforeSend = Callable[[], Awaitable[None]]


class RateLimiter(Protocol):
    """Awaited before every request (retries included); e.g. a shared Redis token bucket."""

    async def acquire(self) -> None: ...


class GliderClient:
    """Glider v2 over one ``aiohttp.ClientSession``; use as ``async with GliderClient(...)``."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        rate_limiter: RateLimiter | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self._root = api_root(base_url)
        self._api_key = api_key
        register_secrets([api_key.get_secret_value()])
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._timeout = exact_timeout(total=timeout, sock_connect=min(connect_timeout, timeout))
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._rate_limiter = rate_limiter
        self._max_body_bytes = max_body_bytes
        self._rng = rng

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def trigger_rebalance(
        self, portfolio_id: str, *, before_send: BeforeSend | None = None
    ) -> RebalanceAccepted:
        """Start a manual rebalance (202). Never re-sent once it may have reached Glider.

        ``before_send`` is awaited once the rate-limit slot is ours, right before the
        request leaves (the caller notes the POST there; raising stops it), so a crash
        between that note and the send is as unlikely as it can be. With it, the client
        sends once: the caller, which notes every POST, owns the retries.
        """
        params = {"portfolioId": portfolio_id}
        return await self._call(
            "POST", REBALANCE, params, RebalanceAccepted, resend=False, before_send=before_send
        )

    async def start(self, portfolio_id: str) -> PortfolioDetail:
        """Resume the schedule; idempotent. BadRequest when the portfolio has no schedule."""
        params = {"portfolioId": portfolio_id}
        return await self._call("POST", START, params, PortfolioDetail, resend=True)

    async def stop(self, portfolio_id: str) -> PortfolioDetail:
        """Pause the schedule; idempotent. BadRequest when the portfolio has no schedule."""
        params = {"portfolioId": portfolio_id}
        return await self._call("POST", STOP, params, PortfolioDetail, resend=True)

    async def get_portfolio(self, portfolio_id: str) -> PortfolioDetail:
        params = {"portfolioId": portfolio_id}
        return await self._call("GET", PORTFOLIO, params, PortfolioDetail, resend=True)

    async def get_operation(self, portfolio_id: str, operation_id: str) -> Operation:
        """One operation; its id (which holds ``:`` and ``%``) is percent-encoded exactly once."""
        params = {"portfolioId": portfolio_id, "operationId": operation_id}
        return await self._call("GET", OPERATION, params, Operation, resend=True)

    async def whoami(self) -> Whoami:
        """The key's tenant and scopes: a cheap check that the key works."""
        return await self._call("GET", WHOAMI, {}, Whoami, resend=True)

    def url_for(self, route: str, params: Mapping[str, str]) -> URL:
        """The request URL, each path parameter one percent-encoded segment (``%`` → ``%25``)."""
        segments = {}
        for name, value in params.items():
            if not value:
                raise ValueError(f"{name} must not be empty")
            segments[name] = quote(value, safe="")
        # encoded=True: aiohttp must send the path as built, not re-quote or normalise it.
        return URL(self._root + route.format(**segments), encoded=True)

    async def _call(
        self,
        method: str,
        route: str,
        params: Mapping[str, str],
        model: type[ModelT],
        *,
        resend: bool,
        before_send: BeforeSend | None = None,
    ) -> ModelT:
        url = self.url_for(route, params)
        attempt = 1
        while True:
            try:
                return await self._once(method, url, route, model, before_send)
            except GliderError as exc:
                exc.attempts = attempt
                wait = None if before_send else self._retry_wait(exc, attempt, resend=resend)
                _log_failure(exc, method, route, attempt, wait)
                if wait is None:
                    raise
            await self._sleep(wait)
            attempt += 1

    def _retry_wait(self, exc: GliderError, attempt: int, *, resend: bool) -> float | None:
        """Seconds to wait before sending again, or None to give up now."""
        if attempt > self._max_retries or not exc.retryable:
            return None
        # Only a failed connect proves a request never reached Glider. After a timeout,
        # a dropped connection or any answer (even a 5xx or 429) it may have, so a
        # request that must not run twice (a rebalance) is not sent again.
        never_sent = isinstance(exc, GliderUnavailable) and not exc.request_sent
        if not resend and not never_sent:
            return None
        if exc.retry_after is not None and exc.retry_after > self._max_retry_wait:
            return None
        return retry_wait(attempt, exc.retry_after, cap=self._max_retry_wait, rng=self._rng)

    async def _once(
        self,
        method: str,
        url: URL,
        route: str,
        model: type[ModelT],
        before_send: BeforeSend | None = None,
    ) -> ModelT:
        if self._rate_limiter is not None:
            await self._rate_limiter.acquire()
        if before_send is not None:
            await before_send()
        started = time.perf_counter()
        # One scheme for the status label: Glider's HTTP status, else why there was none.
        outcome = "error"
        # One span per request sent (each retry its own), in the trace of the step sending it.
        with tracing.span(
            f"{method} {route}",
            kind=tracing.SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.template": route},
        ) as span:
            try:
                result, status = await self._exchange(method, url, route, model, span.header())
                outcome = str(status)
                return result
            except GliderError as exc:
                outcome = str(exc.status) if exc.status else _NO_ANSWER.get(type(exc), "error")
                raise
            finally:
                tracing.annotate({"glider_relay.outcome": outcome})
                GLIDER_REQUESTS.labels(route=f"{method} {route}", status=outcome).inc()
                GLIDER_LATENCY.labels(route=f"{method} {route}").observe(
                    time.perf_counter() - started
                )

    async def _exchange(
        self, method: str, url: URL, route: str, model: type[ModelT], traceparent: str
    ) -> tuple[ModelT, int]:
        session = self._ensure_session()
        headers = {
            "x-api-key": self._api_key.get_secret_value(),
            "Accept": "application/json",
            "User-Agent": "glider-relay",
            "traceparent": traceparent,
        }
        try:
            async with session.request(
                method, url, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                body, complete = await read_capped(response, self._max_body_bytes)
                result = interpret(response, body, complete, model, rebalance=route == REBALANCE)
                return result, response.status
        except GliderError:
            raise
        except aiohttp.ClientSSLError as exc:
            raise GliderUnavailable(
                f"TLS failure: {exc}", request_sent=False, permanent=True
            ) from exc
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise GliderUnavailable(f"cannot connect: {exc}", request_sent=False) from exc
        except TimeoutError as exc:
            raise GliderTimeout(f"no answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            message = f"connection failed: {type(exc).__name__}: {exc}"
            raise GliderUnavailable(message, request_sent=True) from exc

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("GliderClient is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=32, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session


def api_root(base_url: str) -> str:
    """``https://api.glider.fi`` from that URL with or without a trailing ``/`` or ``/v2``."""
    root = str(base_url).rstrip("/")
    root = root.removesuffix("/v2")
    if not root.startswith(("http://", "https://")):
        raise ValueError("the Glider base URL must be http:// or https://")
    return root


def _log_failure(
    exc: GliderError, method: str, route: str, attempt: int, wait: float | None
) -> None:
    log.warning(
        "glider %s %s failed (%s)%s",
        method,
        route,
        type(exc).__name__,
        "" if wait is None else f"; retrying in {wait:.2f}s",
        extra={
            "glider_method": method,
            "glider_route": route,
            "glider_status": exc.status,
            "glider_code": exc.code,
            "glider_error": clip(exc.message, MESSAGE_CHARS),
            "glider_request_id": exc.request_id,
            "glider_correlation_id": exc.correlation_id,
            "attempt": attempt,
            "retry_in": wait,
        },
    )
