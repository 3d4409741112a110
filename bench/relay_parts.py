"""The three senders ``bench/relay.py`` compares: ours, arq, bare."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

from bench.relay_receivers import Receivers
from relay.core.events import Event, EventData, EventRequester, EventType
from relay.core.ids import new_id
from relay.store import keys
from relay.store.connection import connect_worker
from relay.webhooks.dispatcher import Dispatcher
from relay.webhooks.oncall import OnCallRules
from relay.webhooks.secrets import new_secret, secret_bytes
from relay.webhooks.sender import Sender, make_session
from relay.webhooks.signing import webhook_headers
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore

TYPES = (EventType.COMPLETED, EventType.FAILED, EventType.PAUSED, EventType.RESUMED)


# --- shared ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """When a sender started: wall clock (for rates) and this process's CPU clock."""

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Started:
        return cls(time.time(), time.process_time())


@dataclass
class Setup:
    redis: aioredis.Redis
    url: str
    receivers: Receivers
    cap: int

    @property
    def types(self) -> list[EventType]:
        return list(TYPES[: len(self.receivers.ports)])


def make_events(count: int, types: list[EventType]) -> list[Event]:
    """``count`` events cycling over ``types`` (each goes to exactly one subscription)."""
    requester = EventRequester(teamId="T1", userId="U1", userName="bench")
    return [
        Event(
            type=kind,
            data=EventData(
                requestId=new_id("req"),
                portfolioId=f"pf_{n % 50}",
                state=kind.value.split(".")[1],
                requestedBy=requester,
            ),
        )
        for n, kind in zip(range(count), itertools.cycle(types), strict=False)
    ]


def _fresh(event: Event) -> Event:
    """The event stamped now (paced runs measure from production)."""
    return event.model_copy(update={"timestamp": datetime.now(event.timestamp.tzinfo)})


async def _paced(items: list[Event], rate: float | None) -> AsyncIterator[Event]:
    start = time.monotonic()
    for n, item in enumerate(items):
        if rate is not None:
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            yield _fresh(item)
        else:
            yield item


# --- ours ----------------------------------------------------------------------------


async def ours_run(setup: Setup, events: list[Event], rate: float | None) -> Started:
    """Events onto the stream; the dispatcher delivers. Returns when it started."""
    redis_ = setup.redis
    await redis_.flushdb()
    store = SubscriptionStore(redis_)
    for index, kind in enumerate(setup.types):
        url = setup.receivers.url(index)
        await store.create(SubscriptionCreate(url=url, events=[kind.value], maxInFlight=setup.cap))
    if rate is None:
        for first in range(0, len(events), 1000):
            async with redis_.pipeline(transaction=False) as pipe:
                for item in events[first : first + 1000]:
                    pipe.xadd(keys.EVENTS, item.stream_fields())  # type: ignore[arg-type]
                await pipe.execute()
    session = make_session(allow_private=True)
    sender = Sender(session, allow_private=True)
    # Production defaults and the worker's own Redis client (relay/store/connection.py);
    # each subscription was created with maxInFlight = cap.
    worker_redis = connect_worker(setup.url)
    dispatcher = Dispatcher(worker_redis, sender, rules=OnCallRules(), consumer="bench")
    start = Started.now()
    task = asyncio.create_task(dispatcher.run())
    try:
        if rate is not None:
            async for item in _paced(events, rate):
                await redis_.xadd(keys.EVENTS, item.stream_fields())  # type: ignore[arg-type]
        await setup.receivers.wait_for(len(events))
    finally:
        dispatcher.stop()
        await task
        await dispatcher.close()
        await worker_redis.aclose()
    return start


# --- arq -------------------------------------------------------------------------------


async def _arq_deliver(ctx: dict[str, Any], url: str, secret: str, msg_id: str, body: str) -> int:
    """The job a user would write: sign, POST, raise (so arq retries) unless 2xx."""
    data = body.encode()
    headers = webhook_headers([secret_bytes(secret)], msg_id, int(time.time()), data)
    session: aiohttp.ClientSession = ctx["session"]
    async with session.post(url, data=data, headers=headers) as response:
        await response.read()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")
        return response.status


async def _arq_startup(ctx: dict[str, Any]) -> None:
    ctx["session"] = aiohttp.ClientSession()


async def _arq_shutdown(ctx: dict[str, Any]) -> None:
    await ctx["session"].close()


def _arq_worker(pool: Any, max_jobs: int) -> Any:
    """arq's worker as a user would set it up; polling 10x its default, to arq's benefit."""
    return Worker(
        functions=[func(_arq_deliver, name="_arq_deliver")],
        redis_pool=pool,
        max_jobs=max_jobs,
        handle_signals=False,
        on_startup=_arq_startup,
        on_shutdown=_arq_shutdown,
        poll_delay=0.05,
    )


async def arq_run(setup: Setup, events: list[Event], rate: float | None) -> Started:
    """One arq job per delivery; an arq worker with the same concurrency runs them."""
    await setup.redis.flushdb()
    pool = await create_pool(RedisSettings.from_dsn(setup.url))
    subs = {kind: (setup.receivers.url(i), new_secret()) for i, kind in enumerate(setup.types)}

    async def enqueue(item: Event) -> None:
        url, secret = subs[item.type]
        await pool.enqueue_job("_arq_deliver", url, secret, f"msg_{item.id}", item.body().decode())

    if rate is None:
        for item in events:
            await enqueue(item)
    worker = _arq_worker(pool, setup.cap * len(setup.types))
    start = Started.now()
    task = asyncio.create_task(worker.main())
    try:
        if rate is not None:
            async for item in _paced(events, rate):
                await enqueue(item)
        await setup.receivers.wait_for(len(events))
    finally:
        worker.allow_pick_jobs = False  # let jobs in progress finish, take no more
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()
    return start


# --- bare ------------------------------------------------------------------------------


async def bare_run(setup: Setup, events: list[Event], rate: float | None) -> Started:
    """Sign and POST from memory with the same concurrency; nothing recorded anywhere."""
    secrets = {kind: secret_bytes(new_secret()) for kind in setup.types}
    urls = {kind: setup.receivers.url(i) for i, kind in enumerate(setup.types)}
    queue: deque[Event] = deque(events if rate is None else [])
    arrived = asyncio.Event()
    done = False

    async def sender(session: aiohttp.ClientSession) -> None:
        while True:
            if not queue:
                if done:
                    return
                arrived.clear()
                await arrived.wait()
                continue
            item = queue.popleft()
            body = item.body()
            headers = webhook_headers(
                [secrets[item.type]], f"msg_{item.id}", int(time.time()), body
            )
            async with session.post(urls[item.type], data=body, headers=headers) as response:
                await response.read()

    start = Started.now()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        workers = [asyncio.create_task(sender(session)) for _ in range(setup.cap * len(urls))]
        if rate is not None:
            async for item in _paced(events, rate):
                queue.append(item)
                arrived.set()
        done = True
        arrived.set()
        await asyncio.gather(*workers)
    return start
