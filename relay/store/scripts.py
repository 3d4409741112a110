"""The one loader of the store's Lua scripts (``relay/store/lua/*.lua``).

Every script is a file; :class:`LuaScript` reads it once, and every call goes
out as ``EVALSHA``. A ``NOSCRIPT`` answer (a restarted or flushed Redis, a new
Cluster node) loads the source and sends the call again: a script that was not
found did not run, so the retry cannot apply anything twice.

A file may start with ``--! include NAME.lua`` lines: the named files are pasted
in first, so shared Lua helpers live in one place and still travel as one script.

Typed wrappers (one per script, next to the store that owns it) are the only
callers: they build every key the script touches from :mod:`relay.store.keys`,
pass them all in ``KEYS`` (Redis's EVAL contract, which Cluster routing relies
on), and turn the reply into dataclasses. :attr:`LuaScript.calls` lets a test
check that contract against a server whose ACL allows only the declared keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

Arg = str | int | float | bytes
Call = tuple[Sequence[str], Sequence[Arg]]

_INCLUDE = re.compile(r"^--!\s*include\s+([\w.-]+\.lua)\s*$", re.M)
_PACKAGE = "relay.store.lua"


@cache
def _source(name: str) -> str:
    text = resources.files(_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: _source(m.group(1)), text)


class LuaScript:
    """One ``.lua`` file of :mod:`relay.store.lua`, called by SHA with a NOSCRIPT fallback."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _source(name)
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r})"

    async def __call__(
        self, redis: aioredis.Redis, keys: Sequence[str], args: Sequence[Arg] = ()
    ) -> Any:
        """Run the script once; raises the ``RedisError`` of the call."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    async def run_many(
        self, redis: aioredis.Redis, calls: Sequence[Call]
    ) -> list[Any | RedisError]:
        """Run several calls in order, in one round trip where the client allows it.

        Each call stays atomic on its own; a call whose script failed gets its
        error in its slot. A connection failure raises for all of them.
        """
        results = await self._send_all(redis, calls)
        if any(isinstance(r, NoScriptError) for r in results):
            # NOSCRIPT means "not run": load it and send those calls again, in order.
            await redis.script_load(self.source)
            again = [c for c, r in zip(calls, results, strict=True) if isinstance(r, NoScriptError)]
            retried = iter(await self._send_all(redis, again))
            results = [next(retried) if isinstance(r, NoScriptError) else r for r in results]
        return results

    async def _send_all(self, redis: aioredis.Redis, calls: Sequence[Call]) -> list[Any]:
        if isinstance(redis, RedisCluster):
            # redis-py refuses scripts in a cluster pipeline; one call after another keeps
            # the order on the node that owns their slot.
            return [await self._one(redis, call) for call in calls]
        pipe = redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def _one(self, redis: aioredis.Redis, call: Call) -> Any:
        keys, args = call
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except RedisError as exc:  # in its slot, as a pipeline with raise_on_error=False gives it
            return exc
