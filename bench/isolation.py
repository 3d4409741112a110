"""Isolation: a healthy subscriber's p99 alone, and beside subscribers that hang, reset, 500.

One healthy subscriber (bench/relay_receivers.py, answering 200) gets events at a
fixed rate (``--rate``), delivered by a real ``glider-relay worker --only
dispatcher`` process on a private redis-server, all on loopback. In an
**alone** run it is the only subscription; in a **beside** run three more
subscriptions take the same events: ``/hang`` (never answers), ``/reset``
(drops the connection) and ``/error`` (500), served by tests/chaos/bad_subscribers.py,
their retries on the chaos test's compressed schedule (an hour of retries every 20 s),
so that the worker is busy with failing attempts the whole run.

The figure is the healthy subscriber's p99, event timestamp to receipt, beside
over alone. Each run has a fresh database and worker; rounds alternate the order
(alone first, then beside first); the worker is pinned to one CPU, Redis, the
receivers and this load generator to the other(s), as bench/ack.py does; the
figures are medians over rounds. The last stdout line is one JSON object
(``isolation_p99_ratio``, ``healthy_p99_alone_ms``, ``healthy_p99_beside_bad_ms``).

    python bench/isolation.py [--quick] [--events 500] [--rounds 3] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ack_procs import NO_PERSISTENCE, Layout, cpu_seconds, pinned, private_redis  # noqa: E402
from bench.relay_receivers import Receivers, serve_receivers  # noqa: E402
from relay.store import keys  # noqa: E402
from relay.webhooks.schedule import DEFAULT_DELAYS_S  # noqa: E402
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore  # noqa: E402
from tests.fixtures.dispatch import event  # noqa: E402

SIMULATED_HOUR_S = 20.0  # as tests/chaos/test_bad_subscribers.py: an hour of retries per 20 s
DELAYS = ",".join(f"{d * SIMULATED_HOUR_S / 3600:g}" for d in DEFAULT_DELAYS_S)
BAD = ("hang", "reset", "error")
# No worker is killed here: the lease stays longer than the 10 s send timeout, as in
# production, so a hanging send is never claimed and sent a second time beside itself.
RECOVERY = ("--claim-idle-ms", "1500", "--lease-ms", "12000", "--grace-s", "0.5")
_PASSED_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH")


@dataclass
class Run:
    """One run: the healthy p99, the worker's CPU and the failing attempts it made."""

    p99_ms: float
    p50_ms: float
    worker_cpu_s: float
    bad_attempts: int
    seconds: float


@dataclass
class Side:
    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    def line(self) -> str:
        p99s = ", ".join(f"{r.p99_ms:.1f}" for r in self.runs)
        cpu = statistics.median(r.worker_cpu_s / r.seconds for r in self.runs)
        bad = statistics.median(r.bad_attempts / r.seconds for r in self.runs)
        p50 = statistics.median(r.p50_ms for r in self.runs)
        return (
            f"{self.name:<6} healthy p99 {self.p99_ms:6.1f} ms (median of {p99s})  "
            f"p50 {p50:5.1f} ms  worker CPU {cpu * 100:3.0f}%  failing attempts {bad:4.0f}/s"
        )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@contextlib.asynccontextmanager
async def bad_subscribers() -> AsyncIterator[tuple[str, list[int]]]:
    """tests/chaos/bad_subscribers.py in its own process: its base URL; on exit, the
    number of requests it got is appended to the yielded list."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "tests.chaos.bad_subscribers"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    seen: list[int] = []
    try:
        yield f"http://127.0.0.1:{int(line.split()[1])}", seen
    finally:
        proc.send_signal(signal.SIGTERM)
        tail = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        seen.append(sum(json.loads(tail or b"{}").values()))
        await asyncio.wait_for(proc.wait(), timeout=10)


@contextlib.asynccontextmanager
async def worker(url: str, cpus: frozenset[int] | None, log: Path) -> AsyncIterator[int]:
    """``glider-relay worker --only dispatcher`` (pinned to ``cpus``): its pid, once started."""
    env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV} | {
        "REDIS_URL": url,
        "GLIDER_API_KEY": "gldr_sk_unused_by_the_dispatcher",
        "RELAY_ALLOW_PRIVATE_URLS": "true",
        "LOG_LEVEL": "INFO",
    }
    argv = ["-m", "bot", "worker", "--only", "dispatcher", "--name", "iso", *RECOVERY]
    with pinned(cpus), log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, "--webhook-delays-s", DELAYS, env=env, cwd=ROOT,
            stdout=out, stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while b"worker started" not in await asyncio.to_thread(log.read_bytes):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start; log: {log}")
            await asyncio.sleep(0.05)
        yield proc.pid
    finally:
        proc.kill()  # the hanging subscriber holds requests: no point in a graceful stop
        await proc.wait()


async def one_run(
    redis: aioredis.Redis, url: str, receivers: Receivers, args: argparse.Namespace, *, bad: bool
) -> Run:
    """A fresh database and worker; ``args.events`` at ``args.rate``; the healthy p99."""
    await redis.flushdb()
    await receivers.reset()
    store = SubscriptionStore(redis)
    await store.create(SubscriptionCreate(url=receivers.url(0), events=["*"]))
    async with contextlib.AsyncExitStack() as stack:
        seen: list[int] = []
        if bad:
            base, seen = await stack.enter_async_context(bad_subscribers())
            for path in BAD:
                await store.create(SubscriptionCreate(url=f"{base}/{path}", events=["*"]))
        log = Path(args.logs) / f"worker-{'beside' if bad else 'alone'}-{time.time():.0f}.log"
        pid = await stack.enter_async_context(worker(url, args.layout_worker, log))
        cpu0, start = cpu_seconds(pid), time.monotonic()
        for n in range(args.events):
            await asyncio.sleep(max(0.0, start + n / args.rate - time.monotonic()))
            await redis.xadd(keys.EVENTS, event().stream_fields())  # type: ignore[arg-type]
        stats = await receivers.wait_for(args.events, within=60)
        seconds, cpu = time.monotonic() - start, cpu_seconds(pid) - cpu0
    latencies = [s * 1000 for s in stats["latencies"]]
    return Run(
        _percentile(latencies, 0.99),
        _percentile(latencies, 0.5),
        cpu,
        seen[0] if seen else 0,
        seconds,
    )


async def bench(args: argparse.Namespace) -> dict[str, object]:
    alone, beside = Side("alone"), Side("beside")
    with private_redis(*NO_PERSISTENCE) as (url, _pid):
        redis = aioredis.Redis.from_url(url)
        async with serve_receivers(1, "isolation.py") as ports, aiohttp.ClientSession() as control:
            receivers = Receivers(control, ports)
            for round_ in range(args.rounds):
                order = [(alone, False), (beside, True)]
                for side, bad in order if round_ % 2 == 0 else order[::-1]:
                    run = await one_run(redis, url, receivers, args, bad=bad)
                    side.runs.append(run)
                    print(f"  round {round_ + 1} {side.name}: p99 {run.p99_ms:.1f} ms", flush=True)
        await redis.aclose()
    print(alone.line())
    print(beside.line())
    ratio = beside.p99_ms / alone.p99_ms
    summary = (
        f"isolation: healthy p99 {alone.p99_ms:.1f} ms alone, {beside.p99_ms:.1f} ms beside "
        f"hang/reset/500 subscribers, ratio {ratio:.2f} (target <= 1.20)"
    )
    print(summary)
    return {
        "isolation_p99_ratio": round(ratio, 3),
        "healthy_p99_alone_ms": round(alone.p99_ms, 2),
        "healthy_p99_beside_bad_ms": round(beside.p99_ms, 2),
        "events": args.events,
        "rate": args.rate,
        "rounds": args.rounds,
        "quick": args.quick,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="events per run (500)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of both runs (3)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--quick", action="store_true", help="250 events, 2 rounds (<= 40 s)")
    args = parser.parse_args(argv)
    args.events = args.events or (250 if args.quick else 500)
    args.rounds = args.rounds or 2 if args.quick else args.rounds or 3
    layout = Layout.split()
    args.layout_worker = layout.server if layout else None
    print(
        f"{args.events} events at {args.rate:.0f}/s per run, {args.rounds} rounds; "
        f"{'worker on CPU ' + ','.join(map(str, sorted(layout.server))) if layout else 'one CPU'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="glider-relay-isolation-") as logs:
        args.logs = logs
        with pinned(layout.load if layout else None):
            figures = asyncio.run(bench(args))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receivers"]:
        from bench.relay_receivers import receiver_main

        sys.exit(receiver_main(sys.argv[2:]))
    sys.exit(main())
