"""Binding a server's port, so that a port in use is one line at start, not a traceback."""

from __future__ import annotations

import os

from aiohttp import web


class ListenFailed(Exception):
    """A server could not bind its address: the one line a process prints before exiting 2."""


async def start_site(runner: web.BaseRunner, host: str, port: int, *, what: str) -> None:
    """Start listening on ``host:port``; :class:`ListenFailed` naming ``what`` and the address
    when it is taken or not ours to bind. The caller still cleans the runner up."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenFailed(f"{what} cannot listen on {host}:{port}: {reason}") from None
