"""Every Lua script touches only the keys its wrapper passed in KEYS (Redis's EVAL contract).

Each case of :data:`tests.fixtures.script_cases.CASES` runs with every script call sent
as an ACL user whose key patterns are exactly the keys that call passed: a script that
reads or writes any other key fails with NOPERM.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from relay.store.scripts import SCRIPTS
from tests import ROOT
from tests.fixtures.script_cases import CASES, ScriptSpy

USER, PASSWORD = "script_keys", "script-keys-pw"
LUA = ROOT / "relay" / "store" / "lua"
_GLOB = re.compile(r"([*?\[\]\\])")


def _pattern(key: str) -> str:
    """A pattern (``acl_setuser`` adds the ``~``) for ``key`` alone: glob characters escaped."""
    return _GLOB.sub(r"\\\1", key)


class Restricted:
    """A client of a user whose key permissions are set, before each call, to its keys."""

    def __init__(self, admin: aioredis.Redis, url: str) -> None:
        self.admin = admin
        self.client = aioredis.Redis.from_url(url, username=USER, password=PASSWORD)

    async def allow(self, keys: Sequence[str]) -> None:
        await self.admin.acl_setuser(
            USER,
            enabled=True,
            reset=True,
            passwords=[f"+{PASSWORD}"],
            keys=[_pattern(k) for k in keys],
            categories=["+@all"],
        )

    async def route(self, keys: Sequence[str]) -> aioredis.Redis:
        await self.allow(keys)
        return self.client


@pytest.fixture
async def restricted(real_redis: aioredis.Redis, redis_url: str) -> AsyncIterator[Restricted]:
    user = Restricted(real_redis, redis_url)
    await user.allow([])
    try:
        yield user
    finally:
        await user.client.aclose()
        await real_redis.acl_deluser(USER)


def _included() -> set[str]:
    names = set()
    for path in LUA.glob("*.lua"):
        names.update(re.findall(r"^--!\s*include\s+(\S+)", path.read_text(), re.M))
    return names


def test_every_script_file_is_loaded_and_has_a_case() -> None:
    """Each script of relay/store/lua (not an include) is a LuaScript, and has a case here."""
    scripts = {p.name for p in LUA.glob("*.lua")} - _included()
    assert scripts == set(SCRIPTS)
    assert scripts == set(CASES)


def test_every_script_states_its_contract() -> None:
    """Each script's header names its KEYS, ARGV, reply and the invariant it keeps."""
    for name in set(CASES):
        header = "\n".join(
            line for line in (LUA / name).read_text().splitlines() if line.startswith("--")
        )
        for word in ("KEYS", "ARGV", "Returns", "Invariant"):
            assert word in header, f"{name} does not say {word}"


async def test_an_undeclared_key_is_refused(restricted: Restricted) -> None:
    """The check itself: a script touching a key it did not declare fails with NOPERM."""
    client = await restricted.route(["{gr}:declared*"])
    with pytest.raises(ResponseError, match=r"(?i)noperm|no permissions|can't access"):
        await client.eval("return redis.call('GET', KEYS[1] .. 'x')", 1, "{gr}:declared*")
    assert await client.eval("return redis.call('GET', KEYS[1])", 1, "{gr}:declared*") is None


@pytest.mark.parametrize("script", sorted(CASES))
async def test_wrapper_declares_every_key_its_script_touches(
    script: str,
    restricted: Restricted,
    real_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The script's wrappers run with each call allowed exactly the keys it passed."""
    spy = ScriptSpy(restricted.route)
    spy.install(monkeypatch)
    await CASES[script](real_redis)
    assert script in spy.called
