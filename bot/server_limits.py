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
  open at once, and a client's beyond ``MAX_CONNECTIONS_PER_CLIENT`` (so one client
  cannot starve Slack, health checks and the console); a refused one is closed as
  soon as accepted, nothing read, with one INFO line per burst.

Slack must get its answer within 3 s, so a client needing more than 5 s to send a
few KiB is not Slack.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.admin.common import error_response

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 256
# Far more than Slack, an operator's browser or a script holds at once; a client holding
# more is taking the others' share of MAX_CONNECTIONS.
MAX_CONNECTIONS_PER_CLIENT = 32
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


def client_of(peer: object, local: object) -> str | None:
    """Whom a connection counts against for ``MAX_CONNECTIONS_PER_CLIENT``, or None for
    no one: the peer's address (an IPv6 peer's /64, which one host holds whole).

    A peer with the connection's own local address is this host (its health checks, a
    reverse proxy beside it that carries every client), and a peer on a private network
    (not loopback) is a load balancer or proxy in front (an ALB, an ingress, a platform's
    router) that carries many clients: both are limited by the total cap only.
    """
    if not (isinstance(peer, tuple) and isinstance(local, tuple)) or peer[0] == local[0]:
        return None  # a Unix socket, or this host
    try:
        address = ipaddress.ip_address(str(peer[0]).partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a dual-stack socket
    if address.is_private and not address.is_loopback:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Refusals:
    """Refused connections, one INFO line per reason and burst (not one per socket)."""

    def __init__(self) -> None:
        self._count: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def note(self, message: str, **extra: object) -> None:
        self._count[message] += 1
        now = time.monotonic()
        if now - self._logged_at.get(message, -_REFUSAL_LOG_EVERY_S) >= _REFUSAL_LOG_EVERY_S:
            log.info(message, extra={**extra, "refused": self._count.pop(message)})
            self._logged_at[message] = now


class _Counted(asyncio.Protocol):
    """One connection: admitted under both caps to aiohttp's handler, or closed unread.

    Once admitted it passes every call through unchanged; it only notes whether the first
    request's headers ever arrived, so a client dropped for trickling them gets an INFO line.
    """

    def __init__(self, factory: _CappedFactory) -> None:
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._client: str | None = None
        self._tail = b""
        self._headers_done = False
        self._started = time.monotonic()
        self._peer: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = transport.get_extra_info("peername")
        self._client = client_of(self._peer, transport.get_extra_info("sockname"))
        self._inner = self._factory.admit(self._client)
        if self._inner is None:
            transport.close()  # nothing read: a refusal costs an accept and a close
            return
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._headers_done:
            seen = self._tail + data
            self._headers_done = b"\r\n\r\n" in seen
            self._tail = seen[-3:] or b"-"  # non-empty: some bytes came
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._factory.release(self._client)
        waited = time.monotonic() - self._started
        if self._tail and not self._headers_done and waited >= HEADER_TIMEOUT_S:
            log.info(
                "client dropped: headers not received within %.0f s",
                HEADER_TIMEOUT_S,
                extra={"peer": str(self._peer)},
            )
        self._inner.connection_lost(exc)


class _CappedFactory:
    """The listening socket's protocol factory, and the count of open connections.

    It counts connections itself, as each is made: asyncio accepts a batch of sockets
    before aiohttp registers any of them, so aiohttp's own list lags behind. A client over
    its own cap is refused before the total is touched, so one client cannot take it all.
    """

    def __init__(self, server: web.Server, max_connections: int, max_per_client: int) -> None:
        self._server = server
        self._max = max_connections
        self._max_per_client = max_per_client
        self.open = 0
        self._per_client: Counter[str] = Counter()
        self._refusals = _Refusals()

    def __call__(self) -> asyncio.BaseProtocol:
        return _Counted(self)

    def admit(self, client: str | None) -> asyncio.Protocol | None:
        """aiohttp's handler for a new connection of ``client``, or None: refused."""
        if client is not None and self._per_client[client] >= self._max_per_client:
            self._refusals.note(
                f"connections refused: {self._max_per_client} open from one client is the cap",
                client=client,
            )
            return None
        if self.open >= self._max:
            self._refusals.note(f"connections refused: {self._max} open is the cap")
            return None
        self.open += 1
        if client is not None:
            self._per_client[client] += 1
        return self._server()

    def release(self, client: str | None) -> None:
        """An admitted connection of ``client`` is gone."""
        self.open -= 1
        if client is not None:
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]  # the table holds open clients only


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites refuse connections beyond ``max_connections`` open, and a
    client's beyond ``max_per_client`` (see :func:`client_of`)."""

    def __init__(
        self,
        app: web.Application,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("keepalive_timeout", HEADER_TIMEOUT_S)
        kwargs.setdefault("lingering_time", LINGER_S)
        super().__init__(app, **kwargs)
        self._max_connections = max_connections
        self._max_per_client = max_per_client
        self._factory: _CappedFactory | None = None

    @property
    def server(self) -> web.Server | None:
        """What sites serve with: the capped factory (the runner itself keeps the Server)."""
        if self._server is None:
            return None
        if self._factory is None:  # one count for every site of this runner
            self._factory = _CappedFactory(
                self._server, self._max_connections, self._max_per_client
            )
        # Sites only call it as the protocol factory of loop.create_server.
        return cast(web.Server, self._factory)
