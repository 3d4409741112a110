"""What the CLI sub-commands that talk to Redis share: the runner, refusals, tables, times.

Each handler returns an exit status: 0 done, 1 refused or not found, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.admin.common import MAX_LIMIT
from relay.settings import ConfigError, Process, Settings, load_settings
from relay.store.connection import connect

Command = Callable[[aioredis.Redis, Settings, argparse.Namespace], Awaitable[int]]


def run_command(process: Process, command: Command) -> Callable[[argparse.Namespace], int]:
    """An argparse ``func`` that loads settings, connects to ``REDIS_URL`` and runs ``command``.

    The embedded store of ``dev`` lives inside that process, so the CLI reaches a
    ``dev`` only when it runs on a real Redis (``REDIS_URL``).
    """

    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_settings().require(process)
        except ConfigError as exc:
            print(f"glider-relay: {exc}", file=sys.stderr)
            return 2

        async def go() -> int:
            redis = connect(settings.redis_url)
            try:
                return await command(redis, settings, args)
            finally:
                await redis.aclose()

        try:
            return asyncio.run(go())
        except RedisError as exc:
            return fail(f"Redis (REDIS_URL) did not answer: {type(exc).__name__}: {exc}")

    return run


def limit_arg(value: str) -> int:
    """``--limit``: 1 to 500, as the admin API's ``limit``."""
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def fail(message: str) -> int:
    """Print a refusal on stderr (in the admin API's words); exit status 1."""
    print(f"glider-relay: {message}", file=sys.stderr)
    return 1


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def when(value: datetime | None) -> str:
    """A time as the tables show it: UTC to the second, ``-`` when there is none."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str) -> None:
    """Columns padded to their widest cell under a header; ``empty`` when there are no rows."""
    if not rows:
        print(empty)
        return
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


def filters_text(**filters: str | None) -> str:
    """``" (state=failed, portfolio=pf_x)"`` for the filters given, else ``""``."""
    given = [f"{name}={value}" for name, value in filters.items() if value]
    return f" ({', '.join(given)})" if given else ""
