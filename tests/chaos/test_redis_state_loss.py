"""A Redis that lost its state, is not up yet, is full or evicts: real web and worker processes.

Each test runs its own private ``redis-server`` (tests/fixtures/redis_config.py), since it
flushes, fills or reconfigures it.
"""

from __future__ import annotations

import aiohttp
import pytest
import redis.asyncio as aioredis

from relay.core.records import RequestState
from relay.store import keys
from tests.chaos.checks import FAST_RECOVERY, all_final, queue, states
from tests.fixtures.chaos import RelayProcess, RelayProcesses, SimStarter, full_env, portfolio_ids
from tests.fixtures.glider import free_port
from tests.fixtures.redis_config import PrivateRedis, set_config
from tests.fixtures.slack import FakeSlack
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

RECOVERED = 'glider_relay_store_recoveries_total{what="group %s of %s"} 1.0'


async def status_of(url: str) -> tuple[int, dict[str, object]]:
    """(status, JSON body) of a GET; (0, {}) when nothing answers."""
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status, await response.json()
    except (aiohttp.ClientError, ValueError):
        return 0, {}


async def answers(url: str, status: int, redis_state: str | None = None) -> bool:
    code, body = await status_of(url)
    return code == status and (redis_state is None or body.get("redis") == redis_state)


async def all_answer(urls: list[str], status: int, redis_state: str | None = None) -> bool:
    """Whether every one of ``urls`` answers ``status`` (and that ``redis`` state) now."""
    return all([await answers(url, status, redis_state) for url in urls])


async def metrics_text(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        return await r.text()


def logged_with(process: RelayProcess, level: str, fragment: str) -> bool:
    return any(
        line.get("level") == level and fragment in str(line.get("message", ""))
        for line in process.log_lines()
    )


def attempts_logged(process: RelayProcess) -> int:
    return sum("Redis is not up yet" in str(x.get("message", "")) for x in process.log_lines())


@pytest.mark.parametrize("loss", ["flushall", "restart without persistence"])
async def test_lost_state_under_a_running_worker_loses_no_later_command(
    private_redis: PrivateRedis,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
    loss: str,
) -> None:
    """FLUSHALL, or a restart of a Redis without persistence, under a running worker: every
    reader recreates its group (counted, ERROR logged) and commands queued afterwards
    still run to completion, without a worker restart."""
    server = await private_redis()
    sim = await chaos_sim(4, "--op-duration", "0.3", "--cooldown", "0")
    metrics_port = free_port()
    relay_procs.env = full_env(server.url, sim, fake_slack, max_rps=200)
    relay_procs.env["WORKER_METRICS_PORT"] = str(metrics_port)
    worker = await relay_procs.worker("w1", *FAST_RECOVERY, ready=True)
    ready_url = f"http://127.0.0.1:{metrics_port}/readyz"
    async with aioredis.Redis.from_url(server.url) as redis:
        pf = portfolio_ids(4)
        first = await queue(redis, pf[0])
        await eventually(lambda: all_final(redis, [first]), within=20)
        if loss == "flushall":
            await redis.flushall()
        else:
            await server.kill()
            await server.start()
    async with aioredis.Redis.from_url(server.url) as redis:
        after = [await queue(redis, portfolio) for portfolio in pf[1:]]
        await eventually(lambda: all_final(redis, after), within=20, step=0.1)
        assert set((await states(redis, after)).values()) == {RequestState.COMPLETED.value}
    lost = [
        (keys.COMMANDS_GROUP, keys.COMMAND_STREAM),
        (keys.EVENTS_GROUP, keys.EVENTS),
        (keys.REPLIES_GROUP, keys.REPLIES),
    ]

    async def all_counted() -> bool:
        text = await metrics_text(metrics_port)
        return all(RECOVERED % pair in text for pair in lost)

    await eventually(all_counted, within=15, step=0.2)
    for group, stream in lost:
        assert logged_with(worker, "ERROR", f"Redis lost consumer group {group} of {stream}")
    assert logged_with(worker, "ERROR", "may have been lost")
    await eventually(lambda: answers(ready_url, 200), within=10)
    assert await worker.terminate() == 0


async def test_web_and_worker_wait_for_a_redis_that_is_not_up_yet(
    private_redis: PrivateRedis,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """Started before Redis: both retry with a log line per attempt, answer /healthz 200 and
    /readyz 503 meanwhile, then serve once Redis is up (a command runs), and stop with 0."""
    server = await private_redis(start=False)
    sim = await chaos_sim(1, "--op-duration", "0.3", "--cooldown", "0")
    web_port, metrics_port = free_port(), free_port()
    relay_procs.env = full_env(server.url, sim, fake_slack, max_rps=200)
    relay_procs.env["WORKER_METRICS_PORT"] = str(metrics_port)
    web = await relay_procs.web(web_port)
    worker = await relay_procs.worker("w1", *FAST_RECOVERY)
    web_url, worker_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{metrics_port}"
    await eventually(lambda: attempts_logged(web) >= 2 and attempts_logged(worker) >= 2, within=20)
    await eventually(lambda: all_answer([f"{web_url}/healthz", f"{worker_url}/healthz"], 200))
    await eventually(lambda: all_answer([f"{web_url}/readyz", f"{worker_url}/readyz"], 503))
    assert web.running
    assert worker.running
    assert not any("Traceback" in str(x.get("message", "")) for x in worker.log_lines())
    await server.start()
    ready = [f"{web_url}/readyz", f"{worker_url}/readyz"]
    await eventually(lambda: all_answer(ready, 200, "ok"), within=20)
    await eventually(lambda: worker.logged("worker started"), within=10)
    async with aioredis.Redis.from_url(server.url) as redis:
        request_id = await queue(redis, portfolio_ids(1)[0])
        await eventually(lambda: all_final(redis, [request_id]), within=20)
    assert await web.terminate() == 0
    assert await worker.terminate() == 0


async def test_readyz_says_503_for_a_reader_that_cannot_read_a_full_and_an_evicting_store(
    private_redis: PrivateRedis,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """A reader stuck in errors (its stream key of the wrong type), Redis answering OOM, and an
    evicting policy set while running each make /readyz 503 saying which; each fixed, 200."""
    server = await private_redis()
    sim = await chaos_sim(1)
    web_port, metrics_port = free_port(), free_port()
    relay_procs.env = full_env(server.url, sim, fake_slack, max_rps=200)
    relay_procs.env["WORKER_METRICS_PORT"] = str(metrics_port)
    web = await relay_procs.web(web_port)
    worker = await relay_procs.worker("w1", *FAST_RECOVERY, ready=True)
    web_ready = f"http://127.0.0.1:{web_port}/readyz"
    worker_ready = f"http://127.0.0.1:{metrics_port}/readyz"
    both = [web_ready, worker_ready]
    await eventually(lambda: all_answer(both, 200), within=20)
    async with aioredis.Redis.from_url(server.url) as redis:
        await redis.set(keys.REPLIES, "not a stream")

        async def reader_named() -> bool:
            code, body = await status_of(worker_ready)
            readers = body.get("readers")
            return (
                code == 503 and isinstance(readers, dict) and "{gr}:replies (notifiers)" in readers
            )

        await eventually(reader_named, within=20, step=0.2)
        await redis.delete(keys.REPLIES)
        await eventually(lambda: answers(worker_ready, 200), within=20, step=0.2)

    await set_config(server, "maxmemory", "1")
    await eventually(lambda: all_answer(both, 503, "full"), within=10)
    await set_config(server, "maxmemory", "0")
    await eventually(lambda: all_answer(both, 200, "ok"), within=10)

    await set_config(server, "maxmemory-policy", "allkeys-lru")
    await eventually(lambda: all_answer(both, 503, "evicting"), within=10)
    assert "glider_relay_redis_evicting 1.0" in await metrics_text(metrics_port)
    assert logged_with(worker, "ERROR", "evicts keys")
    await set_config(server, "maxmemory-policy", "noeviction")
    await eventually(lambda: all_answer(both, 200, "ok"), within=10)
    assert await web.terminate() == 0
    assert await worker.terminate() == 0


async def test_an_evicting_policy_is_refused_at_start_unless_accepted(
    private_redis: PrivateRedis,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """On allkeys-lru web and worker exit 2 with one line naming the policy and the setting;
    with RELAY_ALLOW_EVICTING_REDIS=true the worker starts (and stops with 0)."""
    server = await private_redis("--maxmemory-policy", "allkeys-lru")
    sim = await chaos_sim(1)
    relay_procs.env = full_env(server.url, sim, fake_slack, max_rps=200)
    refused = [await relay_procs.worker("w1"), await relay_procs.web(free_port())]
    for process in refused:
        assert await process.proc.wait() == 2
        text = process.log_path.read_text()
        assert "maxmemory-policy is allkeys-lru" in text
        assert "RELAY_ALLOW_EVICTING_REDIS=true" in text
    accepted = await relay_procs.start(
        "w2", "worker", "--name", "w2", env={"RELAY_ALLOW_EVICTING_REDIS": "true"}
    )
    await eventually(lambda: accepted.logged("worker started") or not accepted.running, within=20)
    assert accepted.running
    assert logged_with(accepted, "WARNING", "accepted by setting")
    assert await accepted.terminate() == 0
