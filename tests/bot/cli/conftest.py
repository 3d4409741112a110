"""The CLI tests' Redis: the suite's real server, named by REDIS_URL, emptied first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def cli_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """REDIS_URL set for the CLI, on an empty database."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("RELAY_ALLOW_PRIVATE_URLS", raising=False)
    yield client
    client.close()
