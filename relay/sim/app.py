"""The simulated Glider v2 API as an aiohttp application.

Routes: ``GET /v2/whoami``, ``GET /v2/portfolios/{id}``, ``POST .../rebalance``,
``POST .../start``, ``POST .../stop`` and ``GET .../operations/{operationId}``.
One middleware gives every answer (errors and route misses included) its
``X-Request-Id``/``X-Correlation-Id`` and applies latency, the per-IP limit and
injected faults; handlers only authenticate and ask :class:`SimState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from relay.core.clock import Clock, utc_now
from relay.core.ids import new_id
from relay.sim import render
from relay.sim.chaos import Chaos, Fault
from relay.sim.config import READ, WRITE, ScheduleStatus, Scope, SimApiKey, SimConfig
from relay.sim.state import CooldownActive, OperationNotFound, SimError, SimState

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PROXY_PAGES = {
    502: "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
    503: "<html><head><title>503 Service Unavailable</title></head><body>Unavailable</body></html>",
}


@dataclass
class SimContext:
    """What the handlers share: configuration, state, faults and the clock."""

    config: SimConfig
    state: SimState
    chaos: Chaos
    clock: Clock
    closing: asyncio.Event = field(default_factory=asyncio.Event)


SIM = web.AppKey("glider_sim", SimContext)


class ApiError(Exception):
    """A v2 envelope error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def create_app(config: SimConfig, clock: Clock = utc_now) -> web.Application:
    """A fresh simulator; its :class:`SimContext` is ``app[SIM]``."""
    context = SimContext(config, SimState(config, clock), Chaos(config, clock), clock)
    app = web.Application(middlewares=[_middleware])
    app[SIM] = context
    app.on_shutdown.append(_release_delayed)
    app.router.add_get("/v2/whoami", _whoami)
    app.router.add_get("/v2/portfolios/{portfolio_id}", _get_portfolio)
    app.router.add_post("/v2/portfolios/{portfolio_id}/rebalance", _rebalance)
    app.router.add_post("/v2/portfolios/{portfolio_id}/start", _set_schedule("active"))
    app.router.add_post("/v2/portfolios/{portfolio_id}/stop", _set_schedule("paused"))
    app.router.add_get("/v2/portfolios/{portfolio_id}/operations/{operation_id}", _operation)
    return app


async def _release_delayed(app: web.Application) -> None:
    # Requests held back by injected latency finish now instead of delaying shutdown.
    app[SIM].closing.set()


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    context = request.app[SIM]
    ids = {"X-Request-Id": new_id("req"), "X-Correlation-Id": new_id("corr")}
    entry = context.chaos.record(request.method, request.rel_url.raw_path)
    response = await _answer(context, request, handler, ids)
    entry.status = response.status
    response.headers.update(ids)
    return response


async def _answer(
    context: SimContext, request: web.Request, handler: Handler, ids: dict[str, str]
) -> web.StreamResponse:
    if context.chaos.latency_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.closing.wait(), context.chaos.latency_s)
    wait = context.chaos.rate_limited()
    if wait is not None:
        body = render.rate_limit_body(wait, ids["X-Request-Id"], ids["X-Correlation-Id"])
        return web.json_response(body, status=429, headers={"Retry-After": str(wait)})
    fault = context.chaos.next_fault(request.method)
    if fault is not None and not fault.after:
        return _fault_response(fault)
    response = await _handle(request, handler)
    return response if fault is None else _fault_response(fault)


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message)
    except SimError as exc:
        status, code, message = render.sim_error(exc)
        response = _error(status, code, message)
        if isinstance(exc, CooldownActive):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except web.HTTPException as exc:
        if exc.status == 405:
            return _error(405, "API_003", f"Method {request.method} not allowed")
        return _error(exc.status, "API_006", "Route not found")
    except Exception:
        log.exception("simulator handler failed")
        return _error(500, "API_000", "Internal server error")


def _fault_response(fault: Fault) -> web.Response:
    page = _PROXY_PAGES.get(fault.status)
    if page is not None:
        return web.Response(status=fault.status, text=page, content_type="text/html")
    return _error(fault.status, "API_000", "Internal server error")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(render.error(code, message), status=status)


def _ok(data: render.JsonObject, status: int = 200) -> web.Response:
    return web.json_response(render.ok(data), status=status)


def _authorize(request: web.Request, scope: Scope | None) -> tuple[SimContext, SimApiKey]:
    """The caller's key, checked for ``scope``; never echoes what was sent."""
    context = request.app[SIM]
    supplied = request.headers.get("x-api-key")
    if not supplied:
        raise ApiError(401, "API_101", "API key is missing")
    key = context.config.api_key(supplied)
    if key is None:
        raise ApiError(401, "API_102", "API key is invalid")
    if scope is not None and scope not in key.scopes:
        raise ApiError(403, "API_104", f"API key lacks the required scope: {scope}")
    return context, key


async def _whoami(request: web.Request) -> web.StreamResponse:
    context, key = _authorize(request, None)
    return _ok(render.whoami(key, legacy=context.config.legacy_fields))


async def _get_portfolio(request: web.Request) -> web.StreamResponse:
    context, key = _authorize(request, READ)
    view = context.state.portfolio(request.match_info["portfolio_id"], key.tenant)
    return _ok(render.portfolio(view, legacy=context.config.legacy_fields))


async def _rebalance(request: web.Request) -> web.StreamResponse:
    context, key = _authorize(request, WRITE)
    accepted = context.state.trigger_rebalance(request.match_info["portfolio_id"], key.tenant)
    return _ok(render.rebalance_accepted(accepted.operation_id, accepted.submitted_at), 202)


def _set_schedule(status: ScheduleStatus) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        context, key = _authorize(request, WRITE)
        pid = request.match_info["portfolio_id"]
        view = context.state.set_schedule(pid, key.tenant, status)
        return _ok(render.portfolio(view, legacy=context.config.legacy_fields))

    return handler


def operation_id_candidates(raw_segment: str, *, strict: bool) -> list[str]:
    """Ids a raw (still percent-encoded) path segment may name.

    Decoded exactly once, as a client that percent-encodes the id sends it. Unless
    ``strict``, the segment as sent is tried too, for clients that do not encode:
    strict mode therefore catches a client that left an id's ``%`` unescaped.
    """
    decoded = unquote(raw_segment)
    return [decoded] if strict or decoded == raw_segment else [decoded, raw_segment]


async def _operation(request: web.Request) -> web.StreamResponse:
    context, key = _authorize(request, READ)
    pid = request.match_info["portfolio_id"]
    # match_info is already decoded; the raw segment is what the client really sent.
    raw_segment = request.rel_url.raw_path.rsplit("/", 1)[-1]
    candidates = operation_id_candidates(raw_segment, strict=context.config.strict_encoding)
    for candidate in candidates:
        with contextlib.suppress(OperationNotFound):
            view = context.state.operation(pid, key.tenant, candidate)
            return _ok(render.operation(view))
    raise OperationNotFound(candidates[0])
