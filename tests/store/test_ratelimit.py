"""Shared Glider budget: GCRA arithmetic, and several limiters on one Redis bucket."""

from __future__ import annotations

import asyncio
import heapq
import random

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from relay.store.ratelimit import SharedRateLimiter, gcra_penalize, gcra_reserve, interval_us
from tests.chaos.checks import busiest_second
from tests.fixtures.redis import FailingCalls
from tests.fixtures.worker import eventually


class FakeTime:
    """A clock the test moves; sleeping records the wait instead of passing time."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_reserve_spaces_requests_one_interval_apart() -> None:
    """Back-to-back reservations wait 0, 1, 2... intervals; idle time resets the bucket."""
    tat, waits = 0, []
    for _ in range(3):
        reservation = gcra_reserve(tat, 1_000, 100, 0)
        tat = reservation.tat_us
        waits.append(reservation.wait_us)
    assert waits == [0, 100, 200]
    assert gcra_reserve(tat, 10_000, 100, 0).wait_us == 0


def test_burst_tolerance_allows_that_many_at_once() -> None:
    """With a tolerance of two intervals, three requests go at once, the fourth waits."""
    tat, waits = 0, []
    for _ in range(4):
        reservation = gcra_reserve(tat, 0, 100, 200)
        tat = reservation.tat_us
        waits.append(reservation.wait_us)
    assert waits == [0, 0, 0, 100]


def test_penalty_holds_every_slot_until_retry_after() -> None:
    """After a 429 the next slot opens no sooner than Retry-After; a later TAT stays."""
    tat = gcra_penalize(0, 1_000, 5_000_000)
    assert gcra_reserve(tat, 1_000, 100, 0).wait_us == 5_000_000
    assert gcra_penalize(9_999_999, 1_000, 5) == 9_999_999


def test_interval_for_rates() -> None:
    """10 rps is 100 ms apart; tiny and huge rates stay positive integers."""
    assert interval_us(10) == 100_000
    assert interval_us(3) == 333_334
    assert interval_us(10_000) == 100


async def test_lua_matches_the_pure_arithmetic(any_redis: aioredis.Redis) -> None:
    """The Redis script gives the same waits as gcra_reserve for the same clock readings."""
    clock = FakeTime()
    limiter = SharedRateLimiter(any_redis, 4, burst=2, clock=clock)
    rng = random.Random(7)
    tat = 0
    for _ in range(40):
        clock.now += rng.choice([0.0, 0.05, 0.1, 0.3, 1.0])
        expected = gcra_reserve(tat, int(clock.now * 1_000_000), 250_000, 250_000)
        tat = expected.tat_us
        assert await limiter.reserve() == expected.wait_us / 1_000_000


async def test_two_workers_together_stay_within_the_budget(real_redis: aioredis.Redis) -> None:
    """Two limiters on one bucket grant at most max_rps per second between them."""
    clock = FakeTime()
    workers = [SharedRateLimiter(real_redis, 5, clock=clock, sleep=clock.sleep) for _ in "ab"]
    rng = random.Random(1)
    grants: list[int] = []  # when each request may go, in µs as the bucket counts
    for _ in range(200):
        clock.now += rng.uniform(0, 0.05)  # both ask far faster than the budget
        before = len(clock.waits)
        await rng.choice(workers).acquire()
        wait = clock.waits[before] if len(clock.waits) > before else 0.0
        grants.append(int(clock.now * 1_000_000) + round(wait * 1_000_000))
    grants.sort()
    per_second = [sum(1 for g in grants if start <= g < start + 1_000_000) for start in grants]
    assert max(per_second) <= 5
    span_s = (grants[-1] - grants[0]) / 1_000_000
    assert len(grants) / span_s > 4.9  # the budget is used, not wasted


async def test_a_429_slows_every_worker(any_redis: aioredis.Redis) -> None:
    """One worker's penalty makes the other wait out the Retry-After too."""
    clock = FakeTime()
    first = SharedRateLimiter(any_redis, 10, clock=clock, sleep=clock.sleep)
    second = SharedRateLimiter(any_redis, 10, clock=clock, sleep=clock.sleep)
    await first.acquire()
    await first.penalize(30)
    await second.acquire()
    assert clock.waits == [30.0]


async def test_a_lost_bucket_starts_afresh(any_redis: aioredis.Redis) -> None:
    """With the bucket gone (Redis lost its data) the next request goes at once."""
    clock = FakeTime()
    limiter = SharedRateLimiter(any_redis, 1, clock=clock)
    assert await limiter.reserve() == 0
    assert await limiter.reserve() == 1.0
    await any_redis.flushdb()
    assert await limiter.reserve() == 0


class BusyHost:
    """Simulated time for many concurrent sleepers: each wakes at its due time, except that
    a wake-up due inside ``stall`` comes only at its end (the host gave the CPU to others)."""

    def __init__(self, stall: tuple[float, float], start: float = 1_800_000_000.0) -> None:
        self.start = start
        self.now = start
        self.stall = (start + stall[0], start + stall[1])
        self.running = 0  # tasks not asleep and not done
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = self.now + seconds
        if self.stall[0] <= wake < self.stall[1]:
            wake = self.stall[1]
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (wake, id(future), future))
        self.running -= 1
        await future  # run() counts this task running again as it wakes it

    async def run(self, tasks: list[asyncio.Task[None]]) -> None:
        """Move time from one wake-up to the next once every task waits (or is done)."""
        self.running = len(tasks)
        while True:
            await eventually(lambda: self.running == 0, within=10, step=0.001)
            if not self._sleepers:
                return
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            self.running += 1
            future.set_result(None)


async def test_late_wake_ups_do_not_send_a_burst(any_redis: aioredis.Redis) -> None:
    """Three workers with a backlog; the host stalls them all for 0.6 s. Requests whose slot
    passed meanwhile take new slots instead of all going out together when the host is
    back, so Glider still sees at most the budget (+1 for a window's edge) in any second."""
    host = BusyHost(stall=(1.0, 1.6))
    limiters = [SharedRateLimiter(any_redis, 20, clock=host, sleep=host.sleep) for _ in "abc"]
    sent: list[float] = []

    async def requester(limiter: SharedRateLimiter) -> None:
        for _ in range(4):
            await limiter.acquire()
            sent.append(host.now - host.start)
        host.running -= 1

    tasks = [asyncio.create_task(requester(limiters[n % 3])) for n in range(30)]
    await host.run(tasks)
    await asyncio.gather(*tasks)
    assert len(sent) == 120
    assert busiest_second(sent) <= 21
    assert max(sent) < 120 / 20 + 1.5  # the stall costs its own time, not more


async def test_the_budget_waits_out_a_redis_that_fails(
    any_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's reservation that fails on resets is retried with backoff until Redis answers
    (the request then goes out on its slot), the web's raises at once; a 429 penalty that
    fails is dropped, not raised."""
    failing = FailingCalls(any_redis, monkeypatch)
    clock = FakeTime()
    limiter = SharedRateLimiter(any_redis, 10, clock=clock, sleep=clock.sleep, wait_out_faults=True)
    await limiter.acquire()  # loads the script: the failures below are the calls themselves
    failing.fail(2, "EVALSHA")
    await limiter.acquire()
    assert failing.failed == 2
    assert len(clock.waits) >= 2  # the backoffs, then the slot's own wait
    assert limiter.faults.failures == 0
    failing.fail(1, "EVALSHA")
    await limiter.penalize(5.0)
    assert failing.failed == 3
    assert limiter.faults.failures == 1
    web_limiter = SharedRateLimiter(any_redis, 10, clock=clock, sleep=clock.sleep)
    failing.fail(1, "EVALSHA")
    with pytest.raises(RedisConnectionError):
        await web_limiter.acquire()
