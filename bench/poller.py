"""Poll policy vs fixed 2-second polling, and what 100,000 tracked operations cost.

1. Simulated time: operations with a mix of durations (seconds to 10 minutes) are
   polled by our policy (relay.core.poll_policy, jitter on) and by fixed 2 s polling.
   Printed: Glider GETs per operation, detection delay (time from the end of an
   operation to the poll that sees it) p50/p95, and p95 relative to the target
   max(2 s, 10% of the duration). The main mix is uniform over 5 s-10 min; a
   log-uniform 2 s-10 min mix (mostly short operations) is printed beside it.
2. Memory: 100,000 operations tracked (request record with the worker's fields and
   the command's traceparent, index entry, due-set entry) loaded into a private
   server (redis.conf, with Redis's default hash-max-listpack-value pinned);
   used_memory delta per operation. Then a real ``glider-relay worker --only
   poller`` runs against those 100,000 due operations and its RSS is read.

The last stdout line is one JSON object (the bench figures convention):
``poll_gets_ratio_uniform``, ``poll_gets_ratio_loguniform``,
``poll_p95_delay_bound_ratio``, ``redis_bytes_per_op_default`` and ``summary``.

    python bench/poller.py [--operations 100000] [--mix-size 20000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ack_procs import private_redis  # noqa: E402
from relay.core import transitions  # noqa: E402
from relay.core.commands import Action, Requester  # noqa: E402
from relay.core.ids import new_id  # noqa: E402
from relay.core.poll_policy import PollPolicy  # noqa: E402
from relay.core.record_codec import SHORT, pack  # noqa: E402
from relay.core.records import FIRST_POST_MS, POSTS, RequestRecord, RequestState  # noqa: E402
from relay.sim.config import ADMIN_KEY, SimConfig  # noqa: E402
from relay.sim.server import start_sim  # noqa: E402
from relay.store import keys  # noqa: E402

CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
# Redis's own default (redis.conf tunes no encoding; pinned so the figure is the default's).
DEFAULT_LISTPACK = ("--hash-max-listpack-value", "64")


# --- 1. policy in simulated time ------------------------------------------------


@dataclass(frozen=True)
class Result:
    gets: list[int]
    delays: list[float]
    durations: list[float]

    def gets_per_op(self) -> float:
        return statistics.fmean(self.gets)

    def delay(self, q: float) -> float:
        return _quantile(self.delays, q)

    def relative(self, q: float) -> float:
        """Quantile of delay / max(2 s, 10% of duration): at most 1.0 meets the target."""
        ratios = [d / max(2.0, 0.1 * t) for d, t in zip(self.delays, self.durations, strict=True)]
        return _quantile(ratios, q)

    def of_duration(self, q: float) -> float:
        return _quantile([d / t for d, t in zip(self.delays, self.durations, strict=True)], q)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def ours(duration: float, policy: PollPolicy, rng: random.Random) -> tuple[int, float]:
    """Polls made and detection delay for one operation under our policy."""
    age, polls = 0.0, 0
    while age < duration:
        age = policy.next_age(age, rng=rng)
        polls += 1
    return polls, age - duration


def fixed(duration: float, every: float = 2.0) -> tuple[int, float]:
    polls = max(1, math.ceil(duration / every))
    return polls, polls * every - duration


def simulate(durations: list[float], poll: Callable[[float], tuple[int, float]]) -> Result:
    outcomes = [poll(d) for d in durations]
    return Result([g for g, _ in outcomes], [d for _, d in outcomes], durations)


def mixes(size: int, rng: random.Random) -> dict[str, list[float]]:
    return {
        "uniform 5 s-10 min": [rng.uniform(5, 600) for _ in range(size)],
        "log-uniform 2 s-10 min": [
            math.exp(rng.uniform(math.log(2), math.log(600))) for _ in range(size)
        ],
    }


def compare(name: str, durations: list[float]) -> tuple[Result, Result]:
    policy, rng = PollPolicy(), random.Random(7)
    mine = simulate(durations, lambda d: ours(d, policy, rng))
    base = simulate(durations, fixed)
    print(f"mix {name}: {len(durations)} operations")
    for label, result in (("ours ", mine), ("fixed", base)):
        print(
            f"  {label} {result.gets_per_op():6.1f} GETs/op | delay p50 {result.delay(0.5):5.2f} s"
            f" p95 {result.delay(0.95):5.2f} s | p95 delay/duration {result.of_duration(0.95):.3f}"
            f" | p95 delay/max(2 s, 10%) {result.relative(0.95):.2f}"
        )
    print(f"  ratio ours/fixed {mine.gets_per_op() / base.gets_per_op():.3f}")
    return mine, base


# --- 2. memory with 100,000 tracked operations -------------------------------------


def tracked_record(now: datetime) -> tuple[str, dict[str, str]]:
    """A rebalance as the worker leaves it once submitted, built by the real transition:
    queued record, POST noted, then ``transitions.submitted`` applied to the fields."""
    request_id, portfolio = new_id("req"), new_id("pf")
    queued = RequestRecord(
        request_id=request_id,
        action=Action.REBALANCE,
        portfolio_id=portfolio,
        state=RequestState.QUEUED,
        requested_by=Requester(
            team_id="T0123ABCD", user_id="U0123ABCDE", user_name="alice.smith", channel_id="C0123AB"
        ),
        accepted_at=now,
        updated_at=now,
        response_url="https://hooks.slack.com/commands/T0123ABCD/5678901234567/AbCdEfGhIjKlMnOpQrSt",
        traceparent=f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01",
    )
    stamp = str(int(now.timestamp() * 1000))
    # The enqueue script writes queued_fields (equal to to_hash, pinned by a test).
    fields = {**queued.to_hash(), FIRST_POST_MS: stamp, POSTS: "1"}
    operation_id = f"rebalance:{portfolio}:{portfolio}%3Amanual%3A{request_id}"
    plan = transitions.submitted(queued, now, operation_id, now, now)
    # As the outcome step writes them: short names, long values in chunks (record_codec).
    fields.update(pack(plan.set_fields))
    for name in plan.delete_fields:
        fields.pop(SHORT.get(name, name), None)
    return request_id, fields


@dataclass(frozen=True)
class Footprint:
    """used_memory grown per tracked operation, in bytes."""

    tracked: float  # request record + due-set entry: what tracking an operation costs
    index: float  # the request index entry every request also has (kept after the end)


def _used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def load(client: redis.Redis, count: int) -> Footprint:
    """Track ``count`` operations (records and due-set, then index entries), measuring each."""
    client.flushdb()
    start = _used(client)
    now = datetime.now(UTC)
    due_ms = int(now.timestamp() * 1000)
    ids: list[str] = []
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        request_id, fields = tracked_record(now)
        ids.append(request_id)
        mapping: dict[Any, Any] = fields
        pipe.hset(keys.request(request_id), mapping=mapping)
        pipe.zadd(keys.POLL_DUE, {request_id: due_ms + n})
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    tracked = _used(client)
    for n, request_id in enumerate(ids):
        pipe.zadd(keys.REQUESTS, {request_id: 0})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    return Footprint((tracked - start) / count, (_used(client) - tracked) / count)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def worker_rss(redis_url: str, client: redis.Redis, seconds: float) -> tuple[int, int]:
    """Run ``glider-relay worker --only poller`` on the loaded Redis; (RSS KiB, polls made)."""
    sim = await start_sim(SimConfig.default())
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env |= {"REDIS_URL": redis_url, "GLIDER_API_URL": sim.url, "GLIDER_API_KEY": ADMIN_KEY}
    # The loaded operations are unknown to this simulator (404): quiet those logs.
    env |= {"LOG_LEVEL": "CRITICAL", "GLIDER_MAX_RPS": "200"}
    before = client.zcard(keys.POLL_DUE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "worker", "--only", "poller", env=env, cwd=ROOT
    )
    try:
        await asyncio.sleep(seconds)
        rss = rss_kib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        await sim.stop()
    return rss, before - client.zcard(keys.POLL_DUE)


def _footprint(where: str, footprint: Footprint) -> None:
    print(
        f"redis, {where}: {footprint.tracked:.0f} bytes/op tracked (record + due-set entry)"
        f" + {footprint.index:.0f} bytes/op request index"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--mix-size", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="20,000 operations, 5,000 per mix")
    args = parser.parse_args()
    if args.quick:
        args.operations, args.mix_size = min(args.operations, 20_000), min(args.mix_size, 5_000)
    rng = random.Random(2026)
    results = {
        name: compare(name, durations) for name, durations in mixes(args.mix_size, rng).items()
    }
    mine, base = results["uniform 5 s-10 min"]
    short, short_base = results["log-uniform 2 s-10 min"]
    # redis.conf tunes no encoding: the one server, with the default pinned explicitly.
    with private_redis(*DEFAULT_LISTPACK) as (url, _pid):
        private = redis.Redis.from_url(url)
        default = load(private, args.operations)
        _footprint(f"Redis with {' '.join(DEFAULT_LISTPACK)} (its default)", default)
        rss, polled = asyncio.run(worker_rss(url, private, 8.0))
    print(
        f"worker RSS with {args.operations} operations tracked: {rss / 1024:.1f} MiB "
        f"(it polled {polled} of them meanwhile; its memory does not grow with them)"
    )
    ratio = mine.gets_per_op() / base.gets_per_op()
    print(
        f"poller: ours {mine.gets_per_op():.1f} GETs/op vs fixed {base.gets_per_op():.1f} GETs/op"
        f" (ratio {ratio:.2f}), p95 delay {mine.delay(0.95):.1f} s"
        f" ({mine.relative(0.95):.2f} of max(2 s, 10%)); redis {default.tracked:.0f} bytes/op"
    )
    figures = {
        "poll_gets_ratio_uniform": round(ratio, 4),
        "poll_gets_ratio_loguniform": round(short.gets_per_op() / short_base.gets_per_op(), 4),
        "poll_p95_delay_bound_ratio": round(mine.relative(0.95), 4),
        "redis_bytes_per_op_default": round(default.tracked, 1),
        "summary": (
            f"poller GETs/op ratio {ratio:.2f} (uniform), p95 delay {mine.relative(0.95):.2f}"
            f" of bound, {default.tracked:.0f} B/op tracked with Redis defaults"
            + (" (quick)" if args.quick else "")
        ),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
