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
on), and turn the reply into dataclasses. :data:`SCRIPTS` holds every script made,
so a test can run each wrapper on a server whose ACL allows only the keys it declared.
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

# Every script made, by file name: the key-declaration test needs a case for each.
SCRIPTS: dict[str, LuaScript] = {}


class NotRun(RedisError):
    """The call never ran: Redis had lost the script and loading it again failed."""


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
        SCRIPTS.setdefault(name, self)

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
        self, redis: aioredis.Redis, calls: Sequence[Call], *, pipe: Any = None
    ) -> list[Any | RedisError]:
        """Run several calls in order, in one round trip where the client allows it.

        Each call stays atomic on its own; a call whose script failed gets its
        error in its slot. A connection failure of the first send raises for all
        of them. ``pipe`` is a pipeline that already holds its connection (a
        caller that must tell "never sent" from "sent" connects first).
        A call that met NOSCRIPT is sent again after loading the script; if that
        load fails its slot holds :class:`NotRun`, if the second send fails, its error.
        """
        results = await self._send_all(redis, calls, pipe)
        if not any(isinstance(r, NoScriptError) for r in results):
            return results
        # NOSCRIPT means "not run": load it and send those calls again, in order.
        again = [c for c, r in zip(calls, results, strict=True) if isinstance(r, NoScriptError)]
        retried: list[Any]
        try:
            await redis.script_load(self.source)
        except RedisError as exc:
            retried = [NotRun(f"could not load {self.name}: {exc}")] * len(again)
        else:
            try:
                retried = await self._send_all(redis, again)
            except RedisError as exc:
                retried = [exc] * len(again)
        slots = iter(retried)
        return [next(slots) if isinstance(r, NoScriptError) else r for r in results]

    async def _send_all(
        self, redis: aioredis.Redis, calls: Sequence[Call], pipe: Any = None
    ) -> list[Any]:
        if isinstance(redis, RedisCluster):
            # redis-py refuses scripts in a cluster pipeline; one call after another keeps
            # the order on the node that owns their slot.
            return [await self._one(redis, call) for call in calls]
        if pipe is None:
            pipe = redis.pipeline(transaction=False)
        if not calls:
            await pipe.reset()  # gives back a connection the caller took
            return []
        for keys, args in calls:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def _one(self, redis: aioredis.Redis, call: Call) -> Any:
        keys, args = call
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except RedisError as exc:  # in its slot, as a pipeline with raise_on_error=False gives it
            return exc
