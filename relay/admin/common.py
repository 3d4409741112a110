"""What every admin route shares: bearer auth, the error shape, list and object answers."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, SecretStr, ValidationError
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from relay.core.audit import ADMIN, AuditActor
from relay.core.ids import is_well_formed
from relay.core.redact import redact
from relay.store.faults import REDIS_FAULTS, describe, is_transient
from relay.store.paging import is_cursor
from relay.webhooks.oncall import SYSTEM_TARGETS

log = logging.getLogger(__name__)

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

E = TypeVar("E", bound=StrEnum)

# Who an app's changes are audited as: the admin API's are "admin" (the default); the
# console sets CONSOLE and the partner portal PORTAL on their own apps, and call the same
# functions.
AUDIT_ACTOR = web.AppKey("audit_actor", AuditActor)


def actor_of(request: web.Request) -> AuditActor:
    """The audit actor of the app serving ``request``."""
    return request.app.get(AUDIT_ACTOR, ADMIN)


class ApiError(Exception):
    """Raised by a handler; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return web.json_response({"error": error}, status=status)


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "events.0", "message": ...}]``."""
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors()
    ]


def http_error_response(exc: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (404, 405, 413, ...) in the JSON error shape, its headers kept."""
    response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def store_down_message(exc: Exception | None = None) -> str:
    """Whether Redis is unreachable, full or read-only, in words (the 503's message)."""
    if isinstance(exc, OutOfMemoryError) or str(exc).startswith("OOM"):
        return "the relay's store (Redis) is full"
    if isinstance(exc, ReadOnlyError) or str(exc).startswith("READONLY"):
        return "the relay's store (Redis) is read-only (failing over)"
    return "the relay's store (Redis) is unreachable"


def store_down_response(exc: Exception | None = None) -> web.Response:
    """503 ``store_unavailable``, saying whether Redis is unreachable, full or read-only."""
    return error_response(503, "store_unavailable", store_down_message(exc))


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the web process raises, in the JSON error shape: unknown routes, 405,
    413, the store down (503), and any other exception (500, logged with its traceback)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error_response(exc)
    except Exception as exc:
        if isinstance(exc, REDIS_FAULTS) and is_transient(exc):  # reset, loading, full, replica
            log.warning("store unavailable: %s", describe(exc), extra={"path": request.path})
            return store_down_response(exc)
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal", "internal error")


def _bad_path_id(request: web.Request) -> str | None:
    for value in request.match_info.values():
        if not is_well_formed(value):
            return value
    return None


def admin_middleware(token: SecretStr | None) -> Middleware:
    """Bearer-token check (503 while no token is configured), path ids, and JSON errors."""
    expected = token.get_secret_value().encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None:
            return error_response(503, "admin_disabled", "RELAY_ADMIN_TOKEN is not set")
        given = request.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.encode(), expected):
            return error_response(401, "unauthorized", "a valid bearer token is required")
        if _bad_path_id(request) is not None:  # never a store key: "sub_x:dlvs" names another
            return error_response(404, "not_found", "no such resource (malformed id)")

        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message, exc.details)
            except ValidationError as exc:
                details = validation_details(exc)
                return error_response(422, "invalid", "request failed validation", details)

        return await json_errors(request, answer)

    return middleware


async def json_body(request: web.Request, model: type[BaseModel]) -> Any:
    """Parse the body into ``model``: 400 for non-JSON, 422 with field errors otherwise."""
    try:
        payload = await request.json(loads=json.loads)
    except (ValueError, RecursionError):  # also: bad UTF-8, an over-long int, too deep
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    return model.model_validate(payload)


def parse_limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    # ASCII digits only, and few: str.isdigit() also passes "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "bad_limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_subscription_filter(request: web.Request) -> str | None:
    """The ``subscription`` filter of a deliveries list: absent or empty is None; anything
    but a subscription id (``sub_`` + ULID, or an on-call target's ``sys_`` name) is a 400."""
    raw = request.query.get("subscription") or None
    if raw is not None and not (is_cursor(raw, "sub") or raw in SYSTEM_TARGETS):
        raise ApiError(400, "bad_subscription", "subscription must be a subscription id")
    return raw


def parse_cursor(request: web.Request, prefix: str) -> str | None:
    """The ``cursor`` of a list of ``prefix`` ids (``sub``, ``dlv``, ``req``): absent or
    empty is None; anything but such an id is a 400, never an empty or restarted page."""
    raw = request.query.get("cursor") or None
    if raw is not None and not is_cursor(raw, prefix):
        raise ApiError(400, "bad_cursor", "cursor must be the nextCursor of an earlier page")
    return raw


def query_enum(request: web.Request, name: str, enum: type[E]) -> E | None:
    """An optional enum in the query string: absent or empty is None, an unknown value a 400."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = "|".join(member.value for member in enum)
        raise ApiError(400, f"bad_{name}", f"{name} must be one of {allowed}") from None


def list_response(
    items: Sequence[BaseModel | dict[str, Any]], next_cursor: str | None
) -> web.Response:
    data = [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in items]
    return web.json_response({"data": data, "nextCursor": next_cursor}, dumps=_redacted_json)


def object_response(item: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(item.model_dump(mode="json"), status=status, dumps=_redacted_json)


def _redacted_json(payload: Any) -> str:
    """JSON of an answer with configured secrets redacted: the admin API's door stays shut
    even if upstream text slipped past redaction where it entered."""
    return redact(json.dumps(payload))
