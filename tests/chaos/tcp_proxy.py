"""A TCP proxy for chaos tests: latency, connection resets and blackouts, bounded.

It sits between the relay's processes and a private ``redis-server``, in the test's
own event loop. Faults apply only while ``faults`` is set and before its deadline,
and resets stop after ``max_resets``; afterwards the proxy forwards faithfully.

Data is never reordered. A delayed chunk is delivered late, and so is everything a
blackout held, even when the side that sent it has gone away in the meantime: that
is what the network does to a request whose sender gave up (its retransmissions
still arrive), and it is what makes a write's outcome unknown to its sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

_CHUNK = 64 * 1024
_EOF = b""


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and until when (monotonic seconds)."""

    until: float
    latency: tuple[float, float] = (0.0, 0.0)  # a chunk is held this long (uniform range)
    latency_share: float = 0.0  # of chunks
    reset_share: float = 0.0  # of chunks that reset their connection instead
    blackout: bool = False  # nothing moves either way; all of it is delivered afterwards


@dataclass
class ProxyStats:
    connections: int = 0
    delayed: int = 0
    resets: int = 0
    held_now: int = 0  # chunks accepted and not yet delivered (0: nothing still on its way)


@dataclass
class TcpProxy:
    """``await proxy.start()``; ``proxy.faults = Faults(...)``; ``await proxy.stop()``."""

    upstream_port: int
    max_resets: int = 20
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    faults: Faults | None = None
    stats: ProxyStats = field(default_factory=ProxyStats)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _clients: set[asyncio.StreamWriter] = field(default_factory=set)  # the relay's ends

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _active(self) -> Faults | None:
        faults = self.faults
        return faults if faults is not None and time.monotonic() < faults.until else None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection; wait for the pumps to end."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _reset(writer)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def open_connections(self) -> int:
        """Client connections open now."""
        return len(self._clients)

    def reset_all(self) -> int:
        """RST every connection open now (both ends), as a failover or a middlebox restart
        does; how many client connections that was. Counted in ``stats.resets``."""
        clients = 0
        for writer in list(self._writers):
            clients += writer in self._clients
            _reset(writer)
        self.stats.resets += clients
        return clients

    async def quiet(self) -> bool:
        """Whether nothing is held on its way (a late write can no longer arrive)."""
        return self.stats.held_now == 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        me = asyncio.current_task()
        if me is not None:
            self._tasks.add(me)  # stop() cancels and waits for this handler too
        pair: tuple[asyncio.StreamWriter, ...] = (writer,)
        self._writers.add(writer)
        self._clients.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            pair = (writer, up_writer)
            self._writers.add(up_writer)
            pumps = [
                self._spawn(self._pump(reader, up_writer, pair)),
                self._spawn(self._pump(up_reader, writer, pair)),
            ]
            await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            _reset(writer)
        except asyncio.CancelledError:
            # stop(): end as any closed connection does. A handler task that ends cancelled
            # is logged as an error by asyncio's stream callback (Python 3.11).
            pass
        finally:
            self._clients.discard(writer)
            for end in pair:
                self._writers.discard(end)
                end.close()
            for end in pair:  # the sockets are closed before the test's loop can end
                with contextlib.suppress(OSError, RuntimeError):
                    await end.wait_closed()
            if me is not None:
                self._tasks.discard(me)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        """Read chunks and hand them, in order, to a writer that delivers each when due."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = self._spawn(self._deliver(queue, writer))
        due = 0.0
        try:
            while True:
                try:
                    chunk = await reader.read(_CHUNK)
                except OSError:
                    chunk = _EOF
                faults = self._active()
                if chunk and faults and self._should_reset(faults):
                    self.stats.resets += 1
                    for end in pair:
                        _reset(end)
                    deliver.cancel()
                    return
                due = max(due, time.monotonic() + self._delay(faults))
                self.stats.held_now += 1
                queue.put_nowait((due, chunk))
                if not chunk:
                    break
            await deliver
        finally:
            self.stats.held_now -= queue.qsize()

    def _should_reset(self, faults: Faults) -> bool:
        return self.stats.resets < self.max_resets and self.rng.random() < faults.reset_share

    def _delay(self, faults: Faults | None) -> float:
        if faults is None or self.rng.random() >= faults.latency_share:
            return 0.0
        self.stats.delayed += 1
        return self.rng.uniform(*faults.latency)

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            due, chunk = await queue.get()
            try:
                await asyncio.sleep(max(0.0, due - time.monotonic()))  # the chunk's schedule
                faults = self._active()
                if faults is not None and faults.blackout:  # held until the blackout ends
                    await asyncio.sleep(faults.until - time.monotonic())
                if not chunk:
                    writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
            except (OSError, RuntimeError):
                return
            finally:
                self.stats.held_now -= 1


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a middlebox dropping the connection does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
