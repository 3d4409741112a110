"""The request record's hash kept in Redis's compact encoding: short names, long values cut.

Redis keeps a small hash as a listpack only while every value is at most
``hash-max-listpack-value`` bytes (64 by default); one longer value (a Slack
``response_url``, a Glider rebalance ``operationId``, the requester JSON) turns the
whole hash into a hashtable, about 1.7x the memory. So a value over
:data:`CHUNK_BYTES` bytes is stored as its first chunk under its own name and the
rest under ``name~1``, ``name~2``, ... (each at most :data:`CHUNK_BYTES` bytes of
UTF-8, never splitting a character). :func:`unpack` joins them again; a hash
written before chunking (whole values, no ``~`` fields) unpacks to itself, so
records from the previous version read unchanged. Field names are short
(:data:`SHORT`; ``state`` and the worker's ``x_*`` fields keep theirs, Lua reads
them); the previous version's long names still unpack, a short one winning over
its long one, and :func:`legacy` names what a write must delete beside. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

CHUNK_BYTES = 64  # Redis's default hash-max-listpack-value
MARK = "~"  # never in a modelled field's name

# RequestRecord field -> its name in the hash. Every name here is new to the hash
# (none is a previous version's name), so old and new fields never collide.
SHORT = {
    "request_id": "id",
    "action": "act",
    "portfolio_id": "pf",
    "requested_by": "by",
    "accepted_at": "acc",
    "updated_at": "upd",
    "response_url": "url",
    "reason": "why",
    "operation_id": "op",
    "operation_state": "ops",
    "submitted_at": "sub",
    "finished_at": "fin",
    "error_code": "ec",
    "error_message": "em",
    "retry_at": "rty",
    "traceparent": "tp",
    "reply_status": "rs",
    "reply_kind": "rk",
    "reply_via": "rv",
    "reply_at": "ra",
    "reply_error": "re",
    "reply_dead": "rd",
    "approved_by": "apb",
}
LONG = {short: name for name, short in SHORT.items()}


def legacy(names: list[str] | tuple[str, ...]) -> list[str]:
    """The previous version's names of model fields ``names`` (to delete when writing them)."""
    return [name for name in names if name in SHORT]


def chunk_name(name: str, n: int) -> str:
    """The field holding chunk ``n`` (1-based after the first) of ``name``."""
    return f"{name}{MARK}{n}"


def split(value: str) -> list[str]:
    """``value`` in pieces of at most :data:`CHUNK_BYTES` UTF-8 bytes, whole characters each."""
    if len(value) * 4 <= CHUNK_BYTES or len(value.encode()) <= CHUNK_BYTES:
        return [value]
    if value.isascii():  # one byte a character: plain slices
        return [value[at : at + CHUNK_BYTES] for at in range(0, len(value), CHUNK_BYTES)]
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
    for long_name, value in fields.items():
        name = SHORT.get(long_name, long_name)
        first, *rest = split(value)
        out[name] = first
        for n, part in enumerate(rest, 1):
            out[chunk_name(name, n)] = part
    return out


def unpack(fields: Mapping[str, str]) -> dict[str, str]:
    """The whole values, by model name, from :func:`pack`'s form (or the previous version's)."""
    joined = {name: value for name, value in fields.items() if MARK not in name}
    for name in joined:
        n = 1
        while (part := fields.get(chunk_name(name, n))) is not None:
            joined[name] += part
            n += 1
    out = {name: value for name, value in joined.items() if name not in LONG}
    out |= {LONG[name]: value for name, value in joined.items() if name in LONG}
    return out
