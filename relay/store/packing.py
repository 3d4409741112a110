"""Commands packed by hiredis on the asyncio client, as redis-py's sync client already does.

redis-py packs a command in C (``hiredis.pack_command``, through its
``HiredisRespSerializer``) only on sync connections; ``redis.asyncio`` still packs
every argument in Python (redis-py#4176, docs/ack-profile.md). Our scripts take
many arguments (the enqueue's 11 keys, the webhook layout's dozens), so that packing
is a visible share of the ack's and the dispatcher's CPU. :func:`hiredis_packing`
gives a connection class the sync client's packer, with its semantics: the same
bytes for every argument our code sends (str as UTF-8, bytes as they are, numbers
as their repr). Without hiredis the class is returned unchanged.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_PACKER = HiredisRespSerializer()
_MADE: dict[type[AbstractConnection], type[AbstractConnection]] = {}


class _HiredisPacking:
    """Mixed in before a ``redis.asyncio`` connection class: its ``pack_command`` (which
    ``pack_commands``, the pipelines' packer, calls too) goes through hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _PACKER.pack(*args)
        return packed


def hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` packing its commands with hiredis (itself without hiredis);
    one class per connection class, made once."""
    if not HIREDIS_AVAILABLE:
        return connection_class
    made = _MADE.get(connection_class)
    if made is None:
        name = f"Hiredis{connection_class.__name__}"
        made = _MADE[connection_class] = type(name, (_HiredisPacking, connection_class), {})
    return made
