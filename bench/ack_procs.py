"""The processes of bench/ack.py: CPU layout, a private Redis, the servers, their CPU time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.redis_server import ServerUnavailable, private_server

ROOT = Path(__file__).resolve().parent.parent
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
NO_PERSISTENCE = ("--appendonly", "no")


@dataclass(frozen=True)
class Layout:
    """Which CPUs the server under test gets, and which the load generator and Redis share."""

    server: frozenset[int]
    load: frozenset[int]

    @classmethod
    def split(cls) -> Layout | None:
        """The last allowed CPU for the servers, the rest for the load; None on one CPU."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        return cls(server=frozenset(cpus[-1:]), load=frozenset(cpus[:-1]))

    def describe(self) -> str:
        server, load = _cpus(self.server), _cpus(self.load)
        return f"servers on CPU {server}, load generator and Redis on CPU {load}"


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the body (and every process it starts, which inherits it) on ``cpus``."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (from /proc; 10 ms ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


@contextmanager
def private_redis(*config: str) -> Iterator[tuple[str, int]]:
    """A server of the bench's own (no test session shares it) from redis.conf: (url, pid).

    ``config`` are more server arguments (``NO_PERSISTENCE``, for figures of the
    relay rather than of the disk).
    """
    try:
        with private_server(*config) as started:
            yield started
    except ServerUnavailable as exc:
        raise SystemExit(f"the bench needs a Redis server: {exc}") from None


@contextmanager
def server(argv: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """A server subprocess (its output to ``log``) for the body's duration: its pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        yield proc.pid
    finally:
        proc.terminate()
        if proc.wait(timeout=15) != 0:
            print(f"{argv[2:4]} exited {proc.returncode}; log: {log}", file=sys.stderr)
