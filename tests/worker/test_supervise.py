"""The worker process under its components: a Redis error is ridden out, a bug stops it."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from relay.settings import Settings, load_settings
from relay.worker.process import WorkerFailed, serve
from relay.worker.registry import COMPONENTS, Component, ComponentFactory, Tuning, WorkerContext
from tests.fixtures.worker import eventually


def _settings() -> Settings:
    return load_settings(
        redis_url="redis://127.0.0.1:6379/0",  # unused: the worker gets the test's client
        glider_api_key=SecretStr("gldr_sk_unused"),
    )


def _component(failures: list[Exception], runs: list[int]) -> ComponentFactory:
    """A component whose first runs end with ``failures`` (one each), then runs until stop."""
    stopping = asyncio.Event()

    async def factory(ctx: WorkerContext) -> Component:
        async def run() -> None:
            runs.append(1)
            if len(runs) <= len(failures):
                raise failures[len(runs) - 1]
            await stopping.wait()

        return Component(run, stopping.set)

    return factory


async def test_a_component_ended_by_a_redis_error_runs_again_and_the_worker_stays_up(
    fake_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A component that ends on a Redis error (twice) is run again after a backoff; the
    worker keeps running and stops cleanly (no WorkerFailed) when asked."""
    runs: list[int] = []
    resets: list[Exception] = [RedisConnectionError("reset"), RedisConnectionError("again")]
    monkeypatch.setitem(COMPONENTS, "flaky", _component(resets, runs))
    stop = asyncio.Event()
    tuning = Tuning(grace_s=0.5)
    worker = asyncio.create_task(
        serve(_settings(), stop, only=["flaky"], tuning=tuning, redis=fake_redis)
    )
    await eventually(lambda: len(runs) == 3 or worker.done(), within=10)
    assert not worker.done()
    stop.set()
    await asyncio.wait_for(worker, timeout=10)


async def test_a_component_ended_by_a_bug_still_stops_the_worker(
    fake_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-Redis exception is a bug: the worker stops the rest and raises WorkerFailed
    (exit 1, for a supervisor to restart it)."""
    runs: list[int] = []
    monkeypatch.setitem(COMPONENTS, "buggy", _component([ValueError("a bug")], runs))
    stop = asyncio.Event()
    with pytest.raises(WorkerFailed, match="buggy"):
        await asyncio.wait_for(
            serve(_settings(), stop, only=["buggy"], tuning=Tuning(grace_s=0.5), redis=fake_redis),
            timeout=10,
        )
    assert len(runs) == 1
