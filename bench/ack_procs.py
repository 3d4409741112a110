"""The processes of bench/ack.py: CPU layout, a private Redis, the servers, their CPU time."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
READY_S = 20.0
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def private_redis(*config: str) -> Iterator[tuple[str, int]]:
    """A redis-server of the bench's own (no test session shares it): (url, pid).

    ``config`` are more ``redis-server`` arguments; by default persistence is off,
    as on the shared development server.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the bench needs a redis-server binary on PATH")
    port, workdir = free_port(), tempfile.mkdtemp(prefix="glider-relay-bench-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    proc = subprocess.Popen([*argv, *(config or ("--appendonly", "no"))], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + READY_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


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
