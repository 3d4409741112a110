"""The pieces of ``bench/relay.py``: receivers, the Redis database, and the three senders."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis
import redis.asyncio as aioredis
from aiohttp import web
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

from relay import keys
from relay.events import Event, EventData, EventRequester, EventType
from relay.ids import new_id
from relay.webhooks.dispatcher import Dispatcher
from relay.webhooks.oncall import OnCallRules
from relay.webhooks.secrets import new_secret, secret_bytes
from relay.webhooks.sender import Sender, make_session
from relay.webhooks.signing import webhook_headers
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CLAIM_KEY = "glider-relay:test-db-claim:"  # as tests/fixtures/redis.py: never a test's db
TYPES = (EventType.COMPLETED, EventType.FAILED, EventType.PAUSED, EventType.RESUMED)


# --- receivers (a subprocess) ------------------------------------------------------


@dataclass
class _Tally:
    count: int = 0
    last: float = 0.0
    stamps: list[tuple[float, bytes]] = field(default_factory=list)


def _receiver_app(tally: _Tally) -> web.Application:
    marker = b'"timestamp":"'

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        tally.count += 1
        tally.last = now
        at = body.find(marker) + len(marker)
        tally.stamps.append((now, body[at : at + 24]))
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        latencies = [
            now - datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
            for now, stamp in tally.stamps
        ]
        return web.json_response({"count": tally.count, "last": tally.last, "latencies": latencies})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": tally.count})

    async def reset(request: web.Request) -> web.Response:
        tally.count, tally.last, tally.stamps = 0, 0.0, []
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    return app


def receiver_main(argv: list[str]) -> int:
    """Serve ``argv[0]`` receivers on loopback sharing one tally; print their ports."""

    async def serve() -> None:
        tally = _Tally()
        ports = []
        for _ in range(int(argv[0])):
            runner = web.AppRunner(_receiver_app(tally), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            ports.append(runner.addresses[0][1])
        print(json.dumps(ports), flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


@contextlib.asynccontextmanager
async def serve_receivers(count: int) -> AsyncIterator[list[int]]:
    """The receiver subprocess; yields its ports."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "relay.py"),
        "--receivers",
        str(count),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        yield [int(p) for p in json.loads(line)]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)


@dataclass
class Receivers:
    """Talks to the receiver subprocess: reset, and wait for a delivery count."""

    control: aiohttp.ClientSession
    ports: list[int]

    def url(self, index: int, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.ports[index]}{path}"

    async def reset(self) -> None:
        async with self.control.post(self.url(0, "/reset")):
            pass

    async def wait_for(self, count: int, *, within: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with self.control.get(self.url(0, "/count")) as response:
                if (await response.json())["count"] >= count:
                    break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"fewer than {count} deliveries within {within} s")
        async with self.control.get(self.url(0, "/stats")) as response:
            stats: dict[str, Any] = await response.json()
            return stats


# --- shared setup ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def claimed_database() -> AsyncIterator[str]:
    """A Redis database nobody else (no test session) uses; flushed before and after."""
    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    for db in range(15, 0, -1):
        if admin.set(f"{CLAIM_KEY}{db}", "bench/relay.py", nx=True, ex=3600):
            break
    else:
        raise RuntimeError("every Redis database 1-15 is claimed")
    data = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    data.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    finally:
        data.flushdb()
        admin.delete(f"{CLAIM_KEY}{db}")


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
    # Production defaults; each subscription was created with maxInFlight = cap.
    dispatcher = Dispatcher(redis_, sender, rules=OnCallRules(), consumer="bench")
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


async def arq_run(setup: Setup, events: list[Event], rate: float | None) -> Started:
    """One arq job per delivery; an arq worker with the same concurrency runs them."""
    await setup.redis.flushdb()
    settings = RedisSettings.from_dsn(setup.url)
    pool = await create_pool(settings)
    subs = {kind: (setup.receivers.url(i), new_secret()) for i, kind in enumerate(setup.types)}

    async def enqueue(item: Event) -> None:
        url, secret = subs[item.type]
        await pool.enqueue_job("_arq_deliver", url, secret, f"msg_{item.id}", item.body().decode())

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["session"] = aiohttp.ClientSession()

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["session"].close()

    if rate is None:
        for item in events:
            await enqueue(item)
    worker = Worker(
        functions=[func(_arq_deliver, name="_arq_deliver")],
        redis_pool=pool,
        max_jobs=setup.cap * len(setup.types),
        handle_signals=False,
        on_startup=startup,
        on_shutdown=shutdown,
        poll_delay=0.05,
    )
    start = Started.now()
    task = asyncio.create_task(worker.main())
    try:
        if rate is not None:
            async for item in _paced(events, rate):
                await enqueue(item)
        await setup.receivers.wait_for(len(events))
    finally:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.aclose()
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
