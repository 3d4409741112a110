"""Turning an HTTP answer from Glider into a model or the exception it means.

A 2xx must be the v2 success envelope around the expected shape; anything else
is a typed :class:`GliderError` carrying Glider's code and message, the trace
ids of the response headers and its ``Retry-After``. Bodies are read up to a cap.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import BaseModel, ValidationError

from relay.core.backoff import parse_retry_after
from relay.core.bounds import PROXY_TEXT_CHARS, clip
from relay.glider.errors import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderError,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    scrub,
)
from relay.glider.models import ErrorEnvelope, RateLimitBody, usable_wait

MAX_BODY_BYTES = 1 << 20
MESSAGE_CHARS = PROXY_TEXT_CHARS
_CHUNK = 64 * 1024

_BY_STATUS: dict[int, type[GliderError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body, or as much as ``limit`` allows; the flag is False when it was cut short."""
    if response.content_length is not None and response.content_length > limit:
        return b"", False
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
    return b"".join(chunks), True


def _trace(headers: CIMultiDictProxy[str]) -> dict[str, Any]:
    return {
        "request_id": headers.get("X-Request-Id"),
        "correlation_id": headers.get("X-Correlation-Id"),
        "retry_after": usable_wait(parse_retry_after(headers.get("Retry-After"))),
    }


def interpret(
    response: aiohttp.ClientResponse,
    body: bytes,
    complete: bool,
    model: type[ModelT],
    *,
    rebalance: bool,
    paged: bool = False,
) -> ModelT:
    """The answer's ``data`` as ``model``, or the GliderError that its status and body mean.

    ``rebalance`` marks the one route where an envelope 429 is a cooldown; ``paged``
    a list, whose ``nextCursor`` (a sibling of ``data``) joins the data.
    """
    trace = _trace(response.headers)
    status = response.status
    if not 200 <= status < 300:
        raise _error_for(status, body if complete else b"", trace, rebalance=rebalance)
    if not complete:
        raise MalformedResponse("answer body is too large", status=status, **trace)
    payload = _json(body)
    if not isinstance(payload, dict) or payload.get("success") is not True:
        raise MalformedResponse("answer is not a v2 success envelope", status=status, **trace)
    data = payload.get("data")
    if paged and isinstance(data, dict):
        data = {**data, "nextCursor": payload.get("nextCursor")}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        message = f"unexpected {model.__name__}: {where}: {first['msg']}"
        raise MalformedResponse(message, status=status, **trace) from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _error_for(status: int, body: bytes, trace: dict[str, Any], *, rebalance: bool) -> GliderError:
    payload = _json(body)
    try:
        envelope: ErrorEnvelope | None = ErrorEnvelope.model_validate(payload)
    except ValidationError:
        envelope = None
    if envelope is not None:
        message, code = envelope.error.message, envelope.error.code
    else:
        message, code = _plain_message(payload, body, status), None
    if status == 429:
        if envelope is not None and rebalance:
            return CooldownActive(message, status=status, code=code, **trace)
        return _rate_limited(message, code, payload, trace)
    kind = ServerError if status >= 500 else _BY_STATUS.get(status, GliderError)
    return kind(message, status=status, code=code, **trace)


def _rate_limited(
    message: str, code: str | None, payload: Any, trace: dict[str, Any]
) -> RateLimited:
    try:
        flat = RateLimitBody.model_validate(payload)
    except ValidationError:
        flat = RateLimitBody()
    # The flat body repeats the ids and the wait; headers win when both are present.
    retry_after = trace["retry_after"]
    trace = {
        "request_id": trace["request_id"] or flat.request_id,
        "correlation_id": trace["correlation_id"] or flat.correlation_id,
        "retry_after": flat.retry_after if retry_after is None else retry_after,
    }
    return RateLimited(message, status=429, code=code, **trace)


def _plain_message(payload: Any, body: bytes, status: int) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        text = payload["message"]
    else:
        text = body.decode("utf-8", errors="replace")
    # Scrubbed before it is flattened and cut: a proxy's page may echo the key, and a cut
    # through it would keep a start that redaction no longer recognises.
    text = clip(" ".join(scrub(text).split()), MESSAGE_CHARS)
    return text or f"HTTP {status}"
