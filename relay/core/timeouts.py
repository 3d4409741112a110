"""aiohttp client timeouts that fire when they say.

aiohttp rounds every timeout of ``ceil_threshold`` (5 s) or more up to the next whole
second of the loop clock, so a 10 s limit is anything from 10 to 11 s depending on when the
request starts: a subscriber answering in 10.1 s was a success most times and a timeout
some. Every client timeout of the relay is built here, with that rounding off.
"""

from __future__ import annotations

import math

import aiohttp

NEVER_ROUND = math.inf  # aiohttp rounds timeouts >= ceil_threshold; none is >= inf


def exact_timeout(*, total: float, sock_connect: float | None = None) -> aiohttp.ClientTimeout:
    """A ClientTimeout of exactly ``total`` seconds (and ``sock_connect``), never rounded."""
    return aiohttp.ClientTimeout(total=total, sock_connect=sock_connect, ceil_threshold=NEVER_ROUND)
