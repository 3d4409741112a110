"""Slash-command ack throughput and latency: ``glider-relay web`` against two Bolt baselines.

The servers run as subprocesses on loopback: ours (``glider-relay web`` on a
real Redis: a redis-server of the bench's own, persistence off), the baseline
that counts, "Bolt+XADD" (a Bolt app whose listener writes the command with one
``XADD`` to the same Redis before it acks: the least a durable ack must do), and a
bare Bolt app whose listener only acks (bench/bare_bolt.py has both). Signed
``/rebalance`` requests (distinct trigger and portfolio ids, so none dedupe) are
fired at concurrency 16.

Making the comparison fair on a small shared machine (2 cores here):

- The CPUs are split once: both servers run on one CPU, the load generator and
  Redis on the other(s); both targets get exactly the same layout. Otherwise the
  scheduler decides per run which of four busy processes share a core, and
  that, not the servers, sets the numbers. Redis sits with the load generator,
  so the CPU Redis spends on our writes still competes with our own load.
- Rounds alternate the targets' order (ABC, CBA, ...) so drifts in machine load land on
  both alike, and every figure printed is the median over rounds.
- Beside wall-clock throughput and latency, each round records the CPU time
  the server process spent per request (from /proc), which is far less
  sensitive to other users of the machine; and the load generator's and
  Redis's CPU per request, which show when the server is not the bottleneck.
- The baseline is a plain ``AsyncApp`` with Bolt's defaults, nothing slowed.

The last line of the output is one JSON object: ``ack_durable_throughput_ratio``,
``ack_durable_p99_ratio`` (ours / Bolt+XADD), ``ack_bare_throughput_ratio`` (ours /
bare Bolt), each target's median figures, and ``summary``, a line for people.

    python bench/ack.py [--requests 8000] [--rounds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from bench.bare_bolt import STREAM as BARE_STREAM  # noqa: E402
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
            for target in targets if round_no % 2 == 0 else targets[::-1]:  # ABC CBA
                batch = build(per_round, f"{target.name[0]}{round_no}")
                result = await measure_round(session, target, batch, args.concurrency, redis_pid)
                target.rounds.append(result)


def report(ours: Target, durable: Target, bare: Target) -> dict[str, object]:
    """Print each target's medians and the ratios; the figures for the JSON last line."""
    for t in (ours, durable, bare):
        server, client, store = (t.median(m) for m in ("server_us", "client_us", "redis_us"))
        print(
            f"{t.name:>9}: {t.median('throughput'):6.0f} req/s, p50 {t.median('p50_ms'):5.2f} ms,"
            f" p99 {t.median('p99_ms'):5.2f} ms | CPU per request: server {server:4.0f} us,"
            f" load generator {client:4.0f} us, Redis {store:3.0f} us"
        )
    figures: dict[str, object] = {}
    for base, key in ((durable, "durable"), (bare, "bare")):
        throughput = ours.median("throughput") / base.median("throughput")
        p50 = ours.median("p50_ms") / base.median("p50_ms")
        p99 = ours.median("p99_ms") / base.median("p99_ms")
        cpu = ours.median("server_us") / base.median("server_us")
        print(
            f"ours/{base.name}: throughput {throughput:.2f}, p50 {p50:.2f}, p99 {p99:.2f},"
            f" server CPU {cpu:.2f}"
        )
        figures[f"ack_{key}_throughput_ratio"] = round(throughput, 3)
        figures[f"ack_{key}_p99_ratio"] = round(p99, 3)
    for t, key in ((ours, "ours"), (durable, "durable"), (bare, "bare")):
        figures[f"{key}_throughput"] = round(t.median("throughput"), 1)
        figures[f"{key}_p99_ms"] = round(t.median("p99_ms"), 2)
    figures["summary"] = (
        f"ack: ours {ours.median('throughput'):.0f} req/s p99 {ours.median('p99_ms'):.1f} ms"
        f" | Bolt+XADD {durable.median('throughput'):.0f} req/s"
        f" p99 {durable.median('p99_ms'):.1f} ms"
        f" | bare Bolt {bare.median('throughput'):.0f} req/s p99 {bare.median('p99_ms'):.1f} ms"
        f" | ours/Bolt+XADD throughput {figures['ack_durable_throughput_ratio']:.2f},"
        f" p99 {figures['ack_durable_p99_ratio']:.2f}"
        f" | ours/bare throughput {figures['ack_bare_throughput_ratio']:.2f}"
    )
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000, help="measured, per target")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured, per target")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of glider-relay web")
    parser.add_argument("--profile", type=Path, help="run ours under cProfile, stats to this file")
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
    ours_port, durable_port, bare_port = free_port(), free_port(), free_port()
    with pinned(load_cpus), private_redis(*NO_PERSISTENCE) as (redis_url, redis_pid):
        env = base_env | {
            "REDIS_URL": redis_url,
            "PORT": str(ours_port),
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "BOT_ALLOWED_USERS": "*",
            "BOT_CONFIRM_REBALANCE": "false",  # the ack of a queued command, not a preview
            "LOG_LEVEL": args.log_level,
        }
        ours_cmd = [sys.executable, "-c", CLI, "web", "--host", "127.0.0.1"]
        if args.profile is not None:
            profiled = ["-m", "cProfile", "-o", str(args.profile.resolve()), "-m", "bot"]
            ours_cmd = [sys.executable, *profiled, "web", "--host", "127.0.0.1"]
        bare_script = str(ROOT / "bench" / "bare_bolt.py")
        bare_cmd = [sys.executable, bare_script, str(bare_port)]
        durable_cmd = [sys.executable, bare_script, str(durable_port), redis_url]
        with ExitStack() as servers:
            with pinned(server_cpus):
                ours_pid = servers.enter_context(server(ours_cmd, env, logs / "ours.log"))
                durable_pid = servers.enter_context(
                    server(durable_cmd, base_env, logs / "durable.log")
                )
                bare_pid = servers.enter_context(server(bare_cmd, base_env, logs / "bare.log"))
            ours = Target("ours", f"http://127.0.0.1:{ours_port}", ours_pid)
            durable = Target("Bolt+XADD", f"http://127.0.0.1:{durable_port}", durable_pid)
            bare = Target("bare Bolt", f"http://127.0.0.1:{bare_port}", bare_pid)
            asyncio.run(measure(args, [ours, durable, bare], redis_pid))
        store = redis.Redis.from_url(redis_url)
        queued, durable_queued = store.xlen(keys.COMMAND_STREAM), store.xlen(BARE_STREAM)
    expected = args.warmup + args.requests // args.rounds * args.rounds
    print(
        f"stream entries written: ours {queued}, Bolt+XADD {durable_queued}"
        f" (each expected {expected})"
    )
    if queued != expected or durable_queued != expected:
        raise SystemExit("a target acked a command it did not write")
    print(json.dumps(report(ours, durable, bare)))


if __name__ == "__main__":
    main()
