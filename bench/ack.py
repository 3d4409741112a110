"""Slash-command ack throughput and latency: ``glider-relay web`` against a bare Bolt app.

Both servers run as subprocesses on loopback: ours (``glider-relay web`` on a
real Redis, a spare database flushed before and after) and a bare Bolt app
behind the same aiohttp adapter whose listener only acks. Signed ``/rebalance``
requests (distinct trigger and portfolio ids, so none dedupe) are fired at
concurrency 16, in rounds that alternate between the two targets (ABBA) so
machine noise lands on both alike.

    python bench/ack.py [--requests 3000] [--rounds 6] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay import keys  # noqa: E402
from tests.fixtures.slack import SIGNING_SECRET, signed_command  # noqa: E402

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# The same claim keys as tests/fixtures/redis.py, so a bench never flushes a test session's db.
CLAIM_KEY = "glider-relay:test-db-claim:"
CLI = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
READY_S = 20.0


@dataclass
class Sample:
    """Latencies (s) and busy time of every measured request against one target."""

    name: str
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


@contextmanager
def spare_db() -> Iterator[str]:
    """A Redis database no test session holds, flushed before and after."""
    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    for db in range(15, 0, -1):
        if admin.set(f"{CLAIM_KEY}{db}", f"bench:{os.getpid()}", nx=True, ex=3600):
            break
    else:
        raise SystemExit("every Redis database 1-15 is claimed")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    finally:
        client.flushdb()
        admin.delete(f"{CLAIM_KEY}{db}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(argv: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        yield
    finally:
        proc.terminate()
        if proc.wait(timeout=15) != 0:
            print(f"{argv[2:4]} exited {proc.returncode}; log: {log}", file=sys.stderr)


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


def build(count: int, tag: str) -> list[tuple[str, dict[str, str]]]:
    """Signed /rebalance requests with distinct portfolio and trigger ids."""
    out = []
    for i in range(count):
        signed = signed_command("/rebalance", f"pf_{tag}_{i}", trigger_id=f"{tag}.{i}")
        out.append((signed.body, signed.headers))
    return out


async def fire(
    session: aiohttp.ClientSession,
    url: str,
    requests: list[tuple[str, dict[str, str]]],
    concurrency: int,
    sample: Sample | None,
) -> None:
    """Send ``requests`` with ``concurrency`` in flight; record into ``sample`` if given.

    Every answer must be a 200 ack with text (ours says "Queued", the bare app "ok").
    """
    pending = iter(requests)

    async def worker() -> None:
        for body, headers in pending:
            start = time.perf_counter()
            async with session.post(url + "/slack/events", data=body, headers=headers) as r:
                payload = await r.read()
                if r.status != 200 or not (b"Queued" in payload or payload == b"ok"):
                    raise RuntimeError(f"{url}: {r.status} {payload[:200]!r}")
            if sample is not None:
                sample.latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if sample is not None:
        sample.elapsed += time.perf_counter() - start


async def measure(args: argparse.Namespace, targets: dict[str, str]) -> dict[str, Sample]:
    samples = {name: Sample(name) for name in targets}
    per_round = args.requests // args.rounds
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in targets.values():
            await wait_ready(session, url)
        for name, url in targets.items():
            await fire(session, url, build(args.warmup, f"w{name[0]}"), args.concurrency, None)
        names = list(targets)
        for round_no in range(args.rounds):
            order = names if round_no % 2 == 0 else names[::-1]  # ABBA
            for name in order:
                batch = build(per_round, f"{name[0]}{round_no}")
                await fire(session, targets[name], batch, args.concurrency, samples[name])
    return samples


def report(ours: Sample, bare: Sample) -> None:
    for sample in (ours, bare):
        print(
            f"{sample.name:>9}: {len(sample.latencies)} requests, {sample.throughput():7.0f} req/s,"
            f" p50 {sample.percentile(50):6.2f} ms, p99 {sample.percentile(99):6.2f} ms"
        )
    throughput_ratio = ours.throughput() / bare.throughput()
    p99_ratio = ours.percentile(99) / bare.percentile(99)
    p50_ratio = ours.percentile(50) / bare.percentile(50)
    print(f"ratios: throughput {throughput_ratio:.2f}, p50 {p50_ratio:.2f}, p99 {p99_ratio:.2f}")
    print(
        f"ack: ours {ours.throughput():.0f} req/s p99 {ours.percentile(99):.1f} ms"
        f" | bare Bolt {bare.throughput():.0f} req/s p99 {bare.percentile(99):.1f} ms"
        f" | throughput ratio {throughput_ratio:.2f}, p99 ratio {p99_ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured, per target")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured, per target")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of glider-relay web")
    args = parser.parse_args()
    ours_port, bare_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="glider-relay-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_"))}
    with spare_db() as redis_url:
        env = base_env | {
            "REDIS_URL": redis_url,
            "PORT": str(ours_port),
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "BOT_ALLOWED_USERS": "*",
            "LOG_LEVEL": args.log_level,
        }
        ours_cmd = [sys.executable, "-c", CLI, "web", "--host", "127.0.0.1"]
        bare_cmd = [sys.executable, str(ROOT / "bench" / "bare_bolt.py"), str(bare_port)]
        with (
            server(ours_cmd, env, logs / "ours.log"),
            server(bare_cmd, base_env, logs / "bare.log"),
        ):
            targets = {
                "ours": f"http://127.0.0.1:{ours_port}",
                "bare Bolt": f"http://127.0.0.1:{bare_port}",
            }
            samples = asyncio.run(measure(args, targets))
        queued = redis.Redis.from_url(redis_url).xlen(keys.COMMANDS)
    expected = args.warmup + args.requests // args.rounds * args.rounds
    print(f"stream entries written by ours: {queued} (expected {expected})")
    report(samples["ours"], samples["bare Bolt"])


if __name__ == "__main__":
    main()
