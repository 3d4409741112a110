"""Redis connections: a real server from ``REDIS_URL``, or the embedded in-process store.

The embedded store (fakeredis with Lua) is what ``dev`` and ``demo`` run on: one
``FakeServer`` per process, shared by web, worker and every client made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fakeredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from relay.store.packing import hiredis_packing

# Short socket timeouts: a Slack ack must say "could not queue" well inside 3 s
# rather than hang on a dead Redis.
SOCKET_TIMEOUT_S = 1.0
# The worker's blocking stream reads wait up to 1 s: its socket must wait longer
# than that, or every idle read races the timeout ("Timeout reading from ...").
WORKER_SOCKET_TIMEOUT_S = 10.0
_embedded_server: fakeredis.FakeServer | None = None


def embedded_server() -> fakeredis.FakeServer:
    global _embedded_server  # noqa: PLW0603 - one shared in-process store by design
    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer()
    return _embedded_server


def is_cluster_url(url: str) -> bool:
    """``redis+cluster://`` (or ``rediss+cluster://``) names a Redis Cluster seed node."""
    return url.split("://", 1)[0] in ("redis+cluster", "rediss+cluster")


def connect(url: str | None, **options: Any) -> aioredis.Redis:
    """A client for ``url``, or for the embedded store when ``url`` is None.

    A cluster URL gives a ``RedisCluster`` client; since every key carries the
    ``{gr}`` hash tag, the rest of the code uses it exactly like a single server.
    """
    if url is None:
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(server=embedded_server(), **options)
        return client
    options.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", SOCKET_TIMEOUT_S)
    if is_cluster_url(url):
        # After every 5th MOVED, redis-py rebuilds its cluster map by closing every
        # connection, even those other tasks are using (they fail with AttributeError,
        # not a RedisError). A fresh client's first concurrent calls are MOVED often
        # enough to trigger that; each MOVED still updates the map, one slot at a time.
        options.setdefault("reinitialize_steps", 0)
        scheme, rest = url.split("://", 1)
        seed = f"{scheme.removesuffix('+cluster')}://{rest}"
        cluster: aioredis.Redis = RedisCluster.from_url(seed, **options)  # type: ignore[assignment]
        return cluster
    options.setdefault("health_check_interval", 15)
    client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool  # no connection is made before the first command
    pool.connection_class = hiredis_packing(pool.connection_class)
    return client


def connect_worker(url: str | None) -> aioredis.Redis:
    """The worker's client (``worker`` and ``dev`` alike): long enough for blocking reads."""
    return connect(url, socket_timeout=WORKER_SOCKET_TIMEOUT_S)


def text(value: bytes | str) -> str:
    """A Redis reply as str, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash or stream-entry reply with str keys and values."""
    return {text(k): text(v) for k, v in raw.items()}
