"""Every Lua script runs through its wrappers on the three-master Redis Cluster."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from tests.fixtures.script_cases import CASES, ScriptSpy


@pytest.mark.parametrize("script", sorted(CASES))
async def test_script_runs_on_cluster(
    script: str, cluster_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script's case (its wrappers, on a realistic state) passes on a cluster client."""

    async def same(_keys: Sequence[str]) -> aioredis.Redis:
        return cluster_redis

    spy = ScriptSpy(same)
    spy.install(monkeypatch)
    await CASES[script](cluster_redis)
    assert script in spy.called
