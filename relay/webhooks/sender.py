"""One HTTP attempt of one delivery: signed POST, 10 s, no redirects, only 2xx succeeds.

The response body is never read whole: at most ``body_limit`` bytes are kept for
the record and the connection is dropped, so a 50 MB answer costs a kilobyte.
Subscriber URLs are checked again here (scheme, literal addresses) and every
resolved address is checked by the session's :class:`GuardedResolver`.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError

from relay import tracing
from relay.core import trace
from relay.core.backoff import parse_retry_after
from relay.core.bounds import ATTEMPT_ERROR_CHARS, RESPONSE_BODY_BYTES, clip, clip_bytes
from relay.core.clock import epoch_ms, utc_now
from relay.core.redact import redact_bytes
from relay.core.timeouts import exact_timeout
from relay.slack.client import SlackApi
from relay.webhooks.alert_card import wake_marker
from relay.webhooks.alert_sender import AlertBusy, AlertLost, AlertSender
from relay.webhooks.claim_step import Claimed, Target
from relay.webhooks.models import Attempt, TargetKind
from relay.webhooks.oncall import pagerduty_verdict
from relay.webhooks.policy import THROTTLE_STATUSES, AttemptResult
from relay.webhooks.signing import webhook_headers
from relay.webhooks.ssrf import BlockedAddress, GuardedResolver, UnsafeURL, check_url

TIMEOUT_S = 10.0
# The check is pure and every attempt repeats it: remember the URLs that passed.
_checked_url = functools.lru_cache(maxsize=4096)(check_url)
BODY_LIMIT = RESPONSE_BODY_BYTES
USER_AGENT = "glider-relay-webhooks/1"


@dataclass(frozen=True, slots=True)
class OnCallConfig:
    """How the internal on-call targets send: the Slack client (and the renderer of the
    alerts it keeps current) and PagerDuty's endpoint."""

    slack: SlackApi | None = None
    alerts: AlertSender | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_routing_key: SecretStr | None = None


def make_session(
    *, allow_private: bool, resolver: aiohttp.abc.AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """A client session whose every connection goes to a checked address."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(resolver, allow_private=allow_private),
        limit=0,  # each subscription has its own cap; a shared pool cap would couple them
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, headers={"user-agent": USER_AGENT}
    )


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError) and isinstance(
        exc.os_error, BlockedAddress
    ):
        return f"refused: {exc.os_error}"
    if isinstance(exc, UnsafeURL):
        return f"refused: url {exc}"
    return clip(f"{type(exc).__name__}: {exc}", ATTEMPT_ERROR_CHARS)


class Sender:
    """Makes attempts over one shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        allow_private: bool,
        oncall: OnCallConfig | None = None,
        timeout_s: float = TIMEOUT_S,
        body_limit: int = BODY_LIMIT,
    ) -> None:
        self.session = session
        self.allow_private = allow_private
        self.oncall = oncall or OnCallConfig()
        self.timeout = exact_timeout(total=timeout_s)
        self.body_limit = body_limit

    async def close(self) -> None:
        """Close the HTTP session and the on-call Slack client."""
        await self.session.close()
        if self.oncall.slack is not None:
            await self.oncall.slack.close()

    async def attempt(self, target: Target, claimed: Claimed) -> AttemptResult:
        """Send ``claimed`` to ``target`` once and describe what happened.

        Each attempt is a span of its event's trace; a webhook carries it as ``traceparent``.
        """
        with tracing.span(
            f"webhook {claimed.event_type}",
            trace.parse(claimed.traceparent),
            kind=tracing.SpanKind.CLIENT,
            attributes={"glider_relay.delivery_id": claimed.delivery_id},
        ) as span:
            result = await self._attempt(target, claimed, span)
            tracing.annotate(_outcome(result))
            return result

    async def _attempt(
        self, target: Target, claimed: Claimed, span: trace.TraceParent
    ) -> AttemptResult:
        at = utc_now()
        start = time.monotonic()
        try:
            if target.kind is TargetKind.SLACK:
                return await self._slack(claimed, at, start)
            url, headers, body = self._request(target, claimed)
            if target.kind is TargetKind.WEBHOOK:
                headers[trace.HEADER] = span.header()
            result = await self._post(url, headers, body, at, start)
            if target.kind is TargetKind.PAGERDUTY:
                return pagerduty_verdict(result)
            return result
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            latency = int((time.monotonic() - start) * 1000)
            return AttemptResult(
                Attempt.model_construct(at=at, latencyMs=latency, error=_error_text(exc))
            )

    def _request(self, target: Target, claimed: Claimed) -> tuple[str, dict[str, str], bytes]:
        if target.kind is TargetKind.PAGERDUTY:
            return self._pagerduty_request(claimed)
        _checked_url(target.url, allow_private=self.allow_private)
        if target.signing is None:
            raise ValueError("subscription has no secret")
        keys = target.signing.active(epoch_ms())
        # Defence at the door: no configured secret leaves in a body, whatever stored it.
        body = redact_bytes(claimed.body)
        headers = webhook_headers(keys, claimed.webhook_id, int(time.time()), body)
        return target.url, headers, body

    async def _slack(self, claimed: Claimed, at: datetime, start: float) -> AttemptResult:
        """The alert a delivery names, rendered (or, from an earlier version, the message
        it holds, posted) through the relay's Slack client; retries are ours, not its."""
        web = self.oncall.slack.web if self.oncall.slack else None
        if web is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        marker = wake_marker(claimed.body)
        error: str | None = None
        retry_after: float | None = None
        status: int | None = 200
        data: dict[str, Any] | None = None
        try:
            if marker is not None:
                if self.oncall.alerts is None:
                    raise ValueError("on-call alerts are rendered only with the relay's Redis")
                data = await self.oncall.alerts.show(web, marker)
            else:
                response = await web.chat_postMessage(**json.loads(redact_bytes(claimed.body)))
                data = response.data if isinstance(response.data, dict) else None
        except (AlertBusy, AlertLost):
            # Its holder renders the latest version; this delivery's retry checks it did.
            error, status = "the alert is being updated by another attempt", None
        except SlackApiError as exc:
            answer = exc.response
            error = f"Slack error: {answer.get('error', 'unknown')}"
            headers = {k.lower(): v for k, v in answer.headers.items()}
            retry_after = parse_retry_after(_first(headers.get("retry-after")))
            status, data = (
                answer.status_code,
                answer.data if isinstance(answer.data, dict) else None,
            )
        latency = int((time.monotonic() - start) * 1000)
        body = json.dumps(data)[: self.body_limit] if data else None
        attempt = Attempt.model_construct(
            at=at, statusCode=status, latencyMs=latency, error=error, responseBody=body
        )
        return AttemptResult(attempt, retry_after)

    def _pagerduty_request(self, claimed: Claimed) -> tuple[str, dict[str, str], bytes]:
        if self.oncall.pagerduty_routing_key is None:
            raise ValueError("PAGERDUTY_ROUTING_KEY is not set")
        event = json.loads(redact_bytes(claimed.body))
        event["routing_key"] = self.oncall.pagerduty_routing_key.get_secret_value()
        body = json.dumps(event, separators=(",", ":")).encode()
        return self.oncall.pagerduty_url, {"content-type": "application/json"}, body

    async def _post(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        at: datetime,
        start: float,
    ) -> AttemptResult:
        async with self.session.post(
            url, data=body, headers=headers, allow_redirects=False, timeout=self.timeout
        ) as response:
            prefix = await self._read_prefix(response)
            latency = int((time.monotonic() - start) * 1000)
            code = response.status
            text = clip_bytes(prefix, self.body_limit)
            error = _answer_error(code)
            retry_after = None
            if code in THROTTLE_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        attempt = Attempt.model_construct(
            at=at, statusCode=code, latencyMs=latency, error=error, responseBody=text or None
        )
        return AttemptResult(attempt, retry_after)

    async def _read_prefix(self, response: aiohttp.ClientResponse) -> bytes:
        """Up to ``body_limit`` bytes; the rest is never read (the connection is closed)."""
        buffer = b""
        try:
            while len(buffer) < self.body_limit:
                chunk = await response.content.read(self.body_limit - len(buffer))
                if not chunk:
                    break
                buffer += chunk
        except (TimeoutError, aiohttp.ClientError):
            pass  # the status line is the answer; a broken body only shortens the record
        if not response.content.at_eof():
            response.close()
        return buffer


def _outcome(result: AttemptResult) -> dict[str, str | int]:
    """What an attempt's span records of its answer."""
    attempt = result.attempt
    if attempt.statusCode is not None:
        return {"http.response.status_code": attempt.statusCode}
    # The error's text stays in the delivery record: it may quote the subscriber's URL.
    return {"error.type": "no_response"}


def _answer_error(code: int) -> str | None:
    return "redirects are not followed" if 300 <= code < 400 else None


def _first(value: object) -> str | None:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else None
    return None if value is None else str(value)
