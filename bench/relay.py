"""Webhook delivery throughput and latency: our dispatcher vs. arq vs. a bare signed sender.

Receivers are aiohttp servers on loopback in a subprocess (one port per
subscription, answering 200). The same signed deliveries are made three ways:

- **ours**: events on the real Redis events stream (a private server of the run's
  own, from redis.conf with persistence off), fanned out and delivered by ``relay.webhooks``'
  dispatcher: per-subscription queues, leases, attempt records;
- **arq**: what a user would write on arq: one job per delivery that signs and
  POSTs (``pip install --no-deps 'arq>=0.26' click``: arq pins redis-py below 6,
  so it is installed beside ours rather than allowed to downgrade it);
- **bare**: an aiohttp sender that signs and POSTs from memory, no bookkeeping
  at all: the practical limit of this machine.

Throughput: every delivery queued up front, timed from start to the last
receipt. Latency: a separate paced run (events produced at ``--rate`` per
second), event timestamp to receipt, p50/p99.

    python bench/relay.py [--events 20000] [--subscriptions 4] [--cap 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay_parts import Setup, Started, arq_run, bare_run, make_events, ours_run  # noqa: E402
from bench.relay_receivers import Receivers, private_database, serve_receivers  # noqa: E402
from relay.worker.process import tune_gc  # noqa: E402

__all__ = ["main"]


@dataclass
class Result:
    """One system's throughput runs (rate, CPU of this process per delivery) and latency."""

    name: str
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def line(self) -> str:
        runs = ", ".join(f"{r:.0f}" for r in self.rates)
        return (
            f"{self.name:<5} {self.rate:7.0f} deliveries/s (median of {runs})  "
            f"cpu {statistics.median(self.cpu_us):4.0f} us/delivery  "
            f"latency p50 {self.p50_ms:5.1f} ms p99 {self.p99_ms:5.1f} ms"
        )


Runner = Callable[[Setup, list[Any], float | None], Awaitable[Started]]


async def _throughput(result: Result, run: Runner, setup: Setup, count: int) -> None:
    """All deliveries queued up front; timed from the sender's start to the last receipt."""
    events = make_events(count, setup.types)
    await setup.receivers.reset()
    start = await run(setup, events, None)
    stats = await setup.receivers.wait_for(count)
    result.rates.append(count / (stats["last"] - start.wall))
    result.cpu_us.append((time.process_time() - start.cpu) / count * 1e6)
    print(f"  {result.name}: {result.rates[-1]:.0f}/s", flush=True)


async def _latency(result: Result, run: Runner, setup: Setup, count: int, rate: float) -> None:
    """Events produced at ``rate``/s; event timestamp to receipt."""
    await setup.receivers.reset()
    await run(setup, make_events(count, setup.types), rate)
    latencies = sorted((await setup.receivers.wait_for(count))["latencies"])
    result.p50_ms = latencies[len(latencies) // 2] * 1000
    result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000


async def bench(args: argparse.Namespace) -> None:
    systems = {"ours": ours_run, "arq": arq_run, "bare": bare_run}
    results = {name: Result(name) for name in systems}
    async with serve_receivers(args.subscriptions) as ports, private_database() as url:
        redis = aioredis.Redis.from_url(url)
        async with aiohttp.ClientSession() as control:
            setup = Setup(redis, url, Receivers(control, ports), args.cap)
            print(
                f"{args.events} events -> {args.subscriptions} subscriptions (each event to one), "
                f"{args.cap} in flight per subscription, {args.rounds} rounds (arq: 1)",
                flush=True,
            )
            # Rounds alternate the order of ours and bare so machine noise lands on both;
            # arq's one long run sits in the middle round, between runs of the other two.
            for round_ in range(args.rounds):
                order = ["ours", "bare"] if round_ % 2 == 0 else ["bare", "ours"]
                if round_ == args.rounds // 2:
                    order.insert(1, "arq")
                for name in order:
                    await _throughput(results[name], systems[name], setup, args.events)
            for name, run in systems.items():
                await _latency(results[name], run, setup, args.paced, args.rate)
        await redis.aclose()
    print(f"latency: {args.paced} events at {args.rate:.0f}/s, event timestamp to receipt")
    for result in results.values():
        print(result.line())
    ours, arq, bare = results["ours"], results["arq"], results["bare"]
    summary = (
        f"relay: ours {ours.rate:.0f}/s | arq {arq.rate:.0f}/s | bare {bare.rate:.0f}/s | "
        f"ours/arq {ours.rate / arq.rate:.2f} | ours/bare {ours.rate / bare.rate:.2f}"
    )
    print(summary)
    # The machine-readable figures (bench/run_all.py reads this last line).
    figures = {
        "relay_bare_ratio": round(ours.rate / bare.rate, 3),
        "relay_arq_ratio": round(ours.rate / arq.rate, 3),
        "ours_per_s": round(ours.rate, 1),
        "arq_per_s": round(arq.rate, 1),
        "bare_per_s": round(bare.rate, 1),
        "ours_p99_ms": round(ours.p99_ms, 2),
        "bare_p99_ms": round(bare.p99_ms, 2),
        "events": args.events,
        "rounds": args.rounds,
        "summary": summary,
    }
    print(json.dumps(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--subscriptions", type=int, default=4)
    parser.add_argument("--cap", type=int, default=16, help="in flight per subscription")
    parser.add_argument("--paced", type=int, default=1_000, help="events in the latency run")
    parser.add_argument("--rate", type=float, default=250.0, help="events/s in the latency run")
    parser.add_argument("--rounds", type=int, default=5, help="throughput runs of ours and bare")
    args = parser.parse_args(argv)
    tune_gc()  # the garbage-collector settings of `glider-relay worker`, for all three senders
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receivers"]:
        from bench.relay_receivers import receiver_main

        sys.exit(receiver_main(sys.argv[2:]))
    sys.exit(main())
