"""Slow and greedy clients against a real ``python -m bot web``: dropped, capped, no traceback.

Loopback has many addresses: a test's other clients connect from 127.0.0.2 and 127.0.0.3,
this host's own (health checks, a proxy beside it) from 127.0.0.1, the server's address."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from bot.server_limits import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    client_of,
)
from tests.fixtures.chaos import RelayProcess, RelayProcesses
from tests.fixtures.glider import free_port
from tests.fixtures.slack import SIGNING_SECRET, signed_command
from tests.fixtures.webhooks import ADMIN_TOKEN, AUTH
from tests.fixtures.worker import eventually

SLOW = 20  # trickling clients of each kind
# Every slow client must be gone by then: its bound plus room for a loaded machine.
DROPPED_WITHIN_S = max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S) + 10
PARTIAL_HEADERS = b"POST /slack/events HTTP/1.1\r\nHost: relay\r\nX-Slow: "
BODY_HEADERS = (
    b"POST /slack/events HTTP/1.1\r\nHost: relay\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n"
)


async def _web(relay_procs: RelayProcesses, redis_url: str) -> tuple[RelayProcess, int]:
    port = free_port()
    relay_procs.env = {
        "REDIS_URL": redis_url,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    web = await relay_procs.web(port)
    await eventually(lambda: web.logged("web listening") or not web.running, within=20)
    assert web.running, web.log_path.read_text()
    return web, port


async def _trickle(port: int, first: bytes) -> bytes:
    """Send ``first``, then one byte every 0.2 s; return what came back once the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(0.2)  # the slow client under test, not a wait in the test
                writer.write(b"a")
                await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        return await reader.read()  # until the server closes the connection
    except ConnectionError:
        return b""
    finally:
        dripping.cancel()
        writer.close()


async def _healthz(port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status


def _no_errors(web: RelayProcess) -> None:
    text = web.log_path.read_text()
    assert "Traceback" not in text
    assert all(line.get("level") not in ("ERROR", "CRITICAL") for line in web.log_lines())


async def test_trickling_headers_and_bodies_are_dropped_while_others_are_served(
    relay_procs: RelayProcesses, redis_url: str
) -> None:
    """Clients trickling headers or a body are closed within the bound (a 408 for the body),
    a normal request is answered meanwhile, and the log has INFO lines, no traceback."""
    web, port = await _web(relay_procs, redis_url)
    slow = [asyncio.create_task(_trickle(port, PARTIAL_HEADERS)) for _ in range(SLOW)]
    slow += [asyncio.create_task(_trickle(port, BODY_HEADERS)) for _ in range(SLOW)]
    assert await _healthz(port) == 200
    answers = await asyncio.wait_for(asyncio.gather(*slow), DROPPED_WITHIN_S)
    header_answers, body_answers = answers[:SLOW], answers[SLOW:]
    assert all(b" 200 " not in answer for answer in header_answers)
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in body_answers)
    dropped = [m for m in web.log_lines() if m.get("message", "").startswith("client dropped")]
    assert len([m for m in dropped if "body" in m["message"]]) == SLOW
    assert len([m for m in dropped if "headers" in m["message"]]) == SLOW
    assert {m["level"] for m in dropped} == {"INFO"}
    assert await _healthz(port) == 200
    _no_errors(web)


async def test_connections_over_the_cap_are_closed_at_once(
    relay_procs: RelayProcesses, redis_url: str
) -> None:
    """With MAX_CONNECTIONS open, one more is closed unread and the refusal is logged; once
    the idle ones are dropped, requests are served again."""
    web, port = await _web(relay_procs, redis_url)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS - 1)]
    # The last one under the cap is answered (on keep-alive): the server has taken every
    # connection before it (it accepts in order), so exactly MAX_CONNECTIONS are open.
    session = aiohttp.ClientSession()
    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
        assert response.status == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), DROPPED_WITHIN_S) == b""
        refused = f"connections refused: {MAX_CONNECTIONS} open is the cap"
        await eventually(lambda: web.logged(refused))
    finally:
        writer.close()
        await session.close()
        for _, idle_writer in idle:
            idle_writer.close()

    async def served() -> bool:
        try:
            return await _healthz(port) == 200
        except aiohttp.ClientError:
            return False

    await eventually(served, within=DROPPED_WITHIN_S)
    _no_errors(web)


HOG, OTHER = "127.0.0.2", "127.0.0.3"  # two clients that are not this host
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"
HEALTHZ_ONCE = b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"


async def _hold(port: int, source: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections from ``source``; the last one is answered (on keep-alive), so the
    server has taken all of them (it accepts in order)."""
    held = [await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))]
    held += [
        await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        for _ in range(count - 1)
    ]
    reader, writer = held[-1]
    writer.write(HEALTHZ)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    return [writer for _, writer in held]


async def _closed_unread(port: int, source: str) -> bool:
    """Whether a request from ``source`` is closed without an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(HEALTHZ_ONCE)
        with contextlib.suppress(ConnectionError):
            return await asyncio.wait_for(reader.read(), DROPPED_WITHIN_S) == b""
        return True  # reset: refused just the same
    finally:
        writer.close()


async def _served_from(port: int, source: str) -> None:
    """A Slack command and an admin API call from ``source`` are answered."""
    command = signed_command("/rebalance", "help")
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
        async with http.post("/slack/events", data=command.body, headers=command.headers) as r:
            assert r.status == 200, await r.text()
        async with http.get("/v1/subscriptions", headers=AUTH) as r:
            assert r.status == 200, await r.text()


async def test_one_client_cannot_take_the_connections_of_the_others(
    relay_procs: RelayProcesses, redis_url: str
) -> None:
    """With MAX_CONNECTIONS_PER_CLIENT open from one client, its next one is closed unread and
    the refusal logged, while this host's health checks and another client's Slack command
    and admin call are served; once it lets go, that client is served again."""
    web, port = await _web(relay_procs, redis_url)
    hog = await _hold(port, HOG, MAX_CONNECTIONS_PER_CLIENT)
    try:
        assert await _closed_unread(port, HOG)
        refused = (
            f"connections refused: {MAX_CONNECTIONS_PER_CLIENT} open from one client is the cap"
        )
        await eventually(lambda: web.logged(refused))
        assert await _healthz(port) == 200
        await _served_from(port, OTHER)
        assert await _closed_unread(port, HOG)  # so the others were served with the hog at its cap
    finally:
        for writer in hog:
            writer.close()
    await eventually(lambda: _admitted(port, HOG), within=DROPPED_WITHIN_S)
    _no_errors(web)


async def _admitted(port: int, source: str) -> bool:
    return not await _closed_unread(port, source)


def test_whom_a_connection_counts_against() -> None:
    """A public client by its address (an IPv6 one by its /64); this host and a proxy or
    load balancer on a private network carry many clients and count against no one."""
    local = ("10.0.0.2", 3000)
    assert client_of(("8.8.4.4", 5555), local) == "8.8.4.4"
    assert client_of(("::ffff:9.9.9.9", 5555, 0, 0), local) == "9.9.9.9"
    assert client_of(("2a00:1450:4001:81a::200e", 5555, 0, 0), local) == "2a00:1450:4001:81a::/64"
    assert client_of(("127.0.0.2", 5555), ("127.0.0.1", 3000)) == "127.0.0.2"
    assert client_of(("10.0.0.2", 5555), local) is None  # this host
    assert client_of(("10.1.2.3", 5555), local) is None  # an ALB or ingress in front
    assert client_of(("172.17.0.1", 5555), local) is None  # a container bridge
    assert client_of("/run/relay.sock", "/run/relay.sock") is None
