"""The request record's hash kept in Redis's compact encoding: long values cut into chunks.

Redis keeps a small hash as a listpack only while every value is at most
``hash-max-listpack-value`` bytes (64 by default); one longer value (a Slack
``response_url``, a Glider rebalance ``operationId``, the requester JSON) turns the
whole hash into a hashtable, about 1.7x the memory. So a value over
:data:`CHUNK_BYTES` bytes is stored as its first chunk under its own name and the
rest under ``name~1``, ``name~2``, ... (each at most :data:`CHUNK_BYTES` bytes of
UTF-8, never splitting a character). :func:`unpack` joins them again; a hash
written before chunking (whole values, no ``~`` fields) unpacks to itself, so
records from the previous version read unchanged. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

CHUNK_BYTES = 64  # Redis's default hash-max-listpack-value
MARK = "~"  # never in a modelled field's name


def chunk_name(name: str, n: int) -> str:
    """The field holding chunk ``n`` (1-based after the first) of ``name``."""
    return f"{name}{MARK}{n}"


def split(value: str) -> list[str]:
    """``value`` in pieces of at most :data:`CHUNK_BYTES` UTF-8 bytes, whole characters each."""
    if len(value) * 4 <= CHUNK_BYTES or len(value.encode()) <= CHUNK_BYTES:
        return [value]
    parts: list[str] = []
    start, size = 0, 0
    for at, char in enumerate(value):
        width = len(char.encode())
        if size + width > CHUNK_BYTES:
            parts.append(value[start:at])
            start, size = at, 0
        size += width
    parts.append(value[start:])
    return parts


def pack(fields: Mapping[str, str]) -> dict[str, str]:
    """``fields`` with every long value cut into chunk fields."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        first, *rest = split(value)
        out[name] = first
        for n, part in enumerate(rest, 1):
            out[chunk_name(name, n)] = part
    return out


def unpack(fields: Mapping[str, str]) -> dict[str, str]:
    """The whole values back from :func:`pack`'s form (or from an unchunked hash)."""
    out = {name: value for name, value in fields.items() if MARK not in name}
    for name in out:
        n = 1
        while (part := fields.get(chunk_name(name, n))) is not None:
            out[name] += part
            n += 1
    return out
