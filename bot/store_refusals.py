"""Redis refusing a write outright, which proves the write did not happen.

An ``OOM`` or ``READONLY`` error reply comes back before a script writes anything (a
full Redis refuses a script that may write; a replica, such as a master demoted by a
failover, refuses its first write), so a command refused that way is certainly not
queued and its ack can say "nothing was done". Any other error reply, or no reply at
all, proves nothing. redis-py maps both codes to their own exceptions, but a reply
inside a script, or from a client that does not map it, is a plain ``ResponseError``:
its code is then the first word of the message.
"""

from __future__ import annotations

from enum import StrEnum

from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError, ResponseError


class WriteRefused(StrEnum):
    """Why Redis refused a write; the value is the command's outcome label."""

    FULL = "store_full"
    READ_ONLY = "store_read_only"


_CODES = {"OOM": WriteRefused.FULL, "READONLY": WriteRefused.READ_ONLY}


def refused_write(exc: RedisError) -> WriteRefused | None:
    """Why Redis refused the write, when ``exc`` proves it did not happen; else None."""
    if isinstance(exc, OutOfMemoryError):
        return WriteRefused.FULL
    if isinstance(exc, ReadOnlyError):
        return WriteRefused.READ_ONLY
    if isinstance(exc, ResponseError):
        code, _, _ = str(exc).partition(" ")
        return _CODES.get(code)
    return None
