"""Limits of the web server against slow and greedy clients (nothing here is Slack's).

Before a request is authenticated, anyone can open a connection, so each costs little
and lasts little:

- headers: aiohttp closes a connection that has not sent a complete request within
  its keep-alive timeout (measured from the connection's start, and again after each
  answer), so ``HEADER_TIMEOUT_S`` is that timeout (the drop is an INFO line);
- body: :func:`body_in_time` reads the body (at most the app's 64 KiB) within
  ``BODY_TIMEOUT_S`` before any handler sees it, else answers 408 and drops the
  client; one that goes away mid-body is an INFO line, not a traceback;
- connections: :class:`GuardedRunner` refuses connections beyond ``MAX_CONNECTIONS``
  open at once (closed as soon as accepted, one INFO line per burst).

Slack must get its answer within 3 s, so a client needing more than 5 s to send a
few KiB is not Slack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.admin.common import error_response

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 256
# After a 408 the server stops reading the unread body this fast, then closes.
LINGER_S = 0.5
_REFUSAL_LOG_EVERY_S = 10.0


def _peer(request: web.Request) -> str | None:
    return request.remote


@web.middleware
async def body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the whole body within ``BODY_TIMEOUT_S`` (cached for the handler), or drop it."""
    if request.body_exists:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                await request.read()
        except TimeoutError:
            log.info(
                "client dropped: body not received within %.0f s",
                BODY_TIMEOUT_S,
                extra={"path": request.path, "peer": _peer(request)},
            )
            response = error_response(408, "request_timeout", "the body came too slowly")
            response.headers["Connection"] = "close"
            return response
        except ConnectionResetError:
            log.info(
                "client went away before its body arrived",
                extra={"path": request.path, "peer": _peer(request)},
            )
            return web.Response(status=400)  # nobody reads it; aiohttp ignores the write
    return await handler(request)


class _Refuse(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is accepted, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's handler for one connection, counted from creation to loss.

    It passes every call through unchanged; it only notes whether the first request's
    headers ever arrived, so a client dropped for trickling them gets an INFO line.
    """

    def __init__(self, inner: asyncio.Protocol, factory: _CappedFactory) -> None:
        self._inner = inner
        self._factory = factory
        self._tail = b""
        self._headers_done = False
        self._started = time.monotonic()
        self._peer: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = transport.get_extra_info("peername")
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._headers_done:
            seen = self._tail + data
            self._headers_done = b"\r\n\r\n" in seen
            self._tail = seen[-3:] or b"-"  # non-empty: some bytes came
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._factory.open -= 1
        waited = time.monotonic() - self._started
        if self._tail and not self._headers_done and waited >= HEADER_TIMEOUT_S:
            log.info(
                "client dropped: headers not received within %.0f s",
                HEADER_TIMEOUT_S,
                extra={"peer": str(self._peer)},
            )
        self._inner.connection_lost(exc)


class _CappedFactory:
    """The listening socket's protocol factory: aiohttp's handler, or a refusal at the cap.

    It counts connections itself, from the moment it makes one: asyncio accepts a batch
    of sockets before aiohttp registers any of them, so aiohttp's own list lags behind.
    """

    def __init__(self, server: web.Server, max_connections: int) -> None:
        self._server = server
        self._max = max_connections
        self.open = 0
        self._refused = 0
        self._logged_at = -_REFUSAL_LOG_EVERY_S

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open < self._max:
            self.open += 1
            return _Counted(self._server(), self)
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= _REFUSAL_LOG_EVERY_S:  # one line per burst, not per socket
            log.info(
                "connections refused: %d open is the cap",
                self._max,
                extra={"refused": self._refused},
            )
            self._logged_at, self._refused = now, 0
        return _Refuse()


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites refuse connections beyond ``max_connections``."""

    def __init__(
        self, app: web.Application, *, max_connections: int = MAX_CONNECTIONS, **kwargs: Any
    ) -> None:
        kwargs.setdefault("keepalive_timeout", HEADER_TIMEOUT_S)
        kwargs.setdefault("lingering_time", LINGER_S)
        super().__init__(app, **kwargs)
        self._max_connections = max_connections
        self._factory: _CappedFactory | None = None

    @property
    def server(self) -> web.Server | None:
        """What sites serve with: the capped factory (the runner itself keeps the Server)."""
        if self._server is None:
            return None
        if self._factory is None:  # one count for every site of this runner
            self._factory = _CappedFactory(self._server, self._max_connections)
        # Sites only call it as the protocol factory of loop.create_server.
        return cast(web.Server, self._factory)
