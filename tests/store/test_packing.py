"""Commands packed by hiredis (relay/store/packing.py): the bytes redis-py's own packer
would send, for any argument our code can pass, and the clients made by connect() use it."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import DataError

from relay.store.connection import connect
from relay.store.packing import hiredis_packing

ARGS = st.lists(
    st.one_of(
        st.text(),  # any text, surrogates left out (neither packer can encode them)
        st.binary(max_size=300),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    max_size=40,
)
NAMES = st.sampled_from(["EVALSHA", "XADD", "HSET", "CONFIG GET", b"ZADD"])


@given(name=NAMES, args=ARGS)
def test_the_same_bytes_as_redis_py_packs(
    name: str | bytes, args: list[str | bytes | int | float]
) -> None:
    plain = aioredis.Connection()
    packed = hiredis_packing(aioredis.Connection)()
    assert b"".join(packed.pack_command(name, *args)) == b"".join(plain.pack_command(name, *args))


def test_what_redis_py_refuses_is_refused() -> None:
    packed = hiredis_packing(aioredis.Connection)()
    bad_values: tuple[Any, ...] = (True, None, object())
    for bad in bad_values:
        with pytest.raises(DataError):
            packed.pack_command("SET", "key", bad)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", aioredis.Connection),
        ("rediss://127.0.0.1:1/0", aioredis.SSLConnection),
        ("unix:///tmp/none.sock", aioredis.UnixDomainSocketConnection),
    ],
)
def test_clients_made_by_connect_pack_with_hiredis(
    url: str, kind: type[AbstractConnection]
) -> None:
    """The URL's own kind of connection (TCP, TLS, a Unix socket), packing with hiredis."""
    made = connect(url).connection_pool.connection_class
    assert made is hiredis_packing(kind)
    assert issubclass(made, kind)
    assert made.pack_command is not kind.pack_command
