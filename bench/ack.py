"""Slash-command ack throughput and latency: ``glider-relay web`` against a bare Bolt app.

Both servers run as subprocesses on loopback: ours (``glider-relay web`` on a
real Redis: a redis-server of the bench's own, persistence off) and a bare Bolt
app behind the same aiohttp adapter whose listener only acks (bench/bare_bolt.py).
Signed ``/rebalance`` requests (distinct trigger and portfolio ids, so none
dedupe) are fired at concurrency 16.

Making the comparison fair on a small shared machine (2 cores here):

- The CPUs are split once: both servers run on one CPU, the load generator and
  Redis on the other(s); both targets get exactly the same layout. Otherwise the
  scheduler decides per run which of four busy processes share a core, and
  that, not the servers, sets the numbers. Redis sits with the load generator,
  so the CPU Redis spends on our writes still competes with our own load.
- Rounds alternate between the targets (ABBA) so drifts in machine load land on
  both alike, and every figure printed is the median over rounds.
- Beside wall-clock throughput and latency, each round records the CPU time
  the server process spent per request (from /proc), which is far less
  sensitive to other users of the machine; and the load generator's and
  Redis's CPU per request, which show when the server is not the bottleneck.
- The baseline is a plain ``AsyncApp`` with Bolt's defaults, nothing slowed.

    python bench/ack.py [--requests 8000] [--rounds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ack_procs import (  # noqa: E402
    NO_PERSISTENCE,
    Layout,
    cpu_seconds,
    pinned,
    private_redis,
    server,
)
from relay.store import keys  # noqa: E402
from tests.fixtures.redis_server import free_port  # noqa: E402
from tests.fixtures.slack import SIGNING_SECRET, signed_command  # noqa: E402

CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
READY_S = 20.0
Requests = list[tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class Round:
    """One round against one target: wall-clock figures and CPU per request (us)."""

    throughput: float
    p50_ms: float
    p99_ms: float
    server_us: float
    client_us: float
    redis_us: float


@dataclass
class Target:
    name: str
    url: str
    pid: int
    rounds: list[Round] = field(default_factory=list)

    def median(self, metric: str) -> float:
        values: list[float] = [getattr(r, metric) for r in self.rounds]
        return statistics.median(values)


def percentile(latencies: list[float], p: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    """Poll the server's /healthz until it answers (bounded)."""
    async with asyncio.timeout(READY_S):
        while True:
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


def build(count: int, tag: str) -> Requests:
    """Signed /rebalance requests with distinct portfolio and trigger ids."""
    out = []
    for i in range(count):
        signed = signed_command("/rebalance", f"pf_{tag}_{i}", trigger_id=f"{tag}.{i}")
        out.append((signed.body, signed.headers))
    return out


async def fire(
    session: aiohttp.ClientSession, url: str, requests: Requests, concurrency: int
) -> list[float]:
    """Send ``requests`` with ``concurrency`` in flight; the latency (s) of each.

    Every answer must be a 200 ack with text (ours says "Queued", the bare app "ok").
    """
    pending = iter(requests)
    latencies: list[float] = []

    async def worker() -> None:
        for body, headers in pending:
            start = time.perf_counter()
            async with session.post(url + "/slack/events", data=body, headers=headers) as r:
                payload = await r.read()
                if r.status != 200 or not (b"Queued" in payload or payload == b"ok"):
                    raise RuntimeError(f"{url}: {r.status} {payload[:200]!r}")
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def measure_round(
    session: aiohttp.ClientSession,
    target: Target,
    requests: Requests,
    concurrency: int,
    redis_pid: int,
) -> Round:
    count = len(requests)
    server0, redis0, client0 = cpu_seconds(target.pid), cpu_seconds(redis_pid), time.process_time()
    start = time.perf_counter()
    latencies = await fire(session, target.url, requests, concurrency)
    elapsed = time.perf_counter() - start
    per_request_us = 1e6 / count
    return Round(
        throughput=count / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        server_us=(cpu_seconds(target.pid) - server0) * per_request_us,
        client_us=(time.process_time() - client0) * per_request_us,
        redis_us=(cpu_seconds(redis_pid) - redis0) * per_request_us,
    )


async def measure(args: argparse.Namespace, targets: list[Target], redis_pid: int) -> None:
    per_round = args.requests // args.rounds
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for target in targets:
            await wait_ready(session, target.url)
            await fire(
                session, target.url, build(args.warmup, f"w{target.name[0]}"), args.concurrency
            )
        for round_no in range(args.rounds):
            for target in targets if round_no % 2 == 0 else targets[::-1]:  # ABBA
                batch = build(per_round, f"{target.name[0]}{round_no}")
                result = await measure_round(session, target, batch, args.concurrency, redis_pid)
                target.rounds.append(result)


def report(ours: Target, bare: Target) -> None:
    for t in (ours, bare):
        server, client, store = (t.median(m) for m in ("server_us", "client_us", "redis_us"))
        print(
            f"{t.name:>9}: {t.median('throughput'):6.0f} req/s, p50 {t.median('p50_ms'):5.2f} ms,"
            f" p99 {t.median('p99_ms'):5.2f} ms | CPU per request: server {server:4.0f} us,"
            f" load generator {client:4.0f} us, Redis {store:3.0f} us"
        )
    throughput = ours.median("throughput") / bare.median("throughput")
    p50 = ours.median("p50_ms") / bare.median("p50_ms")
    p99 = ours.median("p99_ms") / bare.median("p99_ms")
    cpu = ours.median("server_us") / bare.median("server_us")
    print(
        f"ratios: throughput {throughput:.2f}, p50 {p50:.2f}, p99 {p99:.2f}, server CPU {cpu:.2f}"
    )
    print(
        f"ack: ours {ours.median('throughput'):.0f} req/s p99 {ours.median('p99_ms'):.1f} ms"
        f" | bare Bolt {bare.median('throughput'):.0f} req/s p99 {bare.median('p99_ms'):.1f} ms"
        f" | throughput ratio {throughput:.2f}, p99 ratio {p99:.2f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000, help="measured, per target")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured, per target")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of glider-relay web")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place processes")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    layout = None if args.no_pin else Layout.split()
    print(
        layout.describe() if layout else "processes not pinned", f"(load: {os.getloadavg()[0]:.2f})"
    )
    load_cpus, server_cpus = (layout.load, layout.server) if layout else (None, None)
    logs = Path(tempfile.mkdtemp(prefix="glider-relay-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_"))}
    ours_port, bare_port = free_port(), free_port()
    with pinned(load_cpus), private_redis(*NO_PERSISTENCE) as (redis_url, redis_pid):
        env = base_env | {
            "REDIS_URL": redis_url,
            "PORT": str(ours_port),
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "BOT_ALLOWED_USERS": "*",
            "LOG_LEVEL": args.log_level,
        }
        ours_cmd = [sys.executable, "-c", CLI, "web", "--host", "127.0.0.1"]
        bare_cmd = [sys.executable, str(ROOT / "bench" / "bare_bolt.py"), str(bare_port)]
        with ExitStack() as servers:
            with pinned(server_cpus):
                ours_pid = servers.enter_context(server(ours_cmd, env, logs / "ours.log"))
                bare_pid = servers.enter_context(server(bare_cmd, base_env, logs / "bare.log"))
            ours = Target("ours", f"http://127.0.0.1:{ours_port}", ours_pid)
            bare = Target("bare Bolt", f"http://127.0.0.1:{bare_port}", bare_pid)
            asyncio.run(measure(args, [ours, bare], redis_pid))
        queued = redis.Redis.from_url(redis_url).xlen(keys.COMMAND_STREAM)
    expected = args.warmup + args.requests // args.rounds * args.rounds
    print(f"stream entries written by ours: {queued} (expected {expected})")
    report(ours, bare)


if __name__ == "__main__":
    main()
