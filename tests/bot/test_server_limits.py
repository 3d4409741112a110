"""Slow and greedy clients against a real ``python -m bot web``: dropped, capped, no traceback."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from bot.server_limits import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, MAX_CONNECTIONS
from tests.fixtures.chaos import RelayProcess, RelayProcesses
from tests.fixtures.glider import free_port
from tests.fixtures.slack import SIGNING_SECRET
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
    relay_procs.env = {"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
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
