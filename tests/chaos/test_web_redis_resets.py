"""The web process while its Redis link resets and blacks out: every answer is clean JSON.

A real ``glider-relay web`` reaches Redis only through tests/chaos/tcp_proxy.py. While
every connection is reset again and again, and then nothing moves for a few seconds,
``/readyz``, the admin API and ``/rebalance status`` keep answering: 200, or 503 in the
JSON error shape (``store_unavailable``) while Redis cannot answer, never a 500, a text
error or a traceback; ``/readyz`` is 503 during the blackout and 200 after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.chaos.tcp_proxy import Faults, TcpProxy
from tests.fixtures.chaos import RelayProcesses, ServerFactory, SimStarter, full_env
from tests.fixtures.glider import free_port
from tests.fixtures.slack import FakeSlack, signed_command
from tests.fixtures.webhooks import AUTH
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

RESET_ROUNDS = 4
BLACKOUT_S = 3.0
ADMIN_PATHS = ("/v1/subscriptions", "/v1/operations", "/v1/deliveries")


@pytest.fixture
async def proxy(redis_servers: ServerFactory) -> AsyncIterator[TcpProxy]:
    server = await redis_servers()
    faulty = TcpProxy(server.port)
    await faulty.start()
    try:
        yield faulty
    finally:
        await faulty.stop()


async def answer(http: aiohttp.ClientSession, method: str, path: str, **kw: object) -> int:
    """The status of one request, checked to be a clean answer: 200, or a JSON 503 in the
    error shape naming the store."""
    async with asyncio.timeout(10), http.request(method, path, **kw) as response:  # type: ignore[arg-type]
        assert response.content_type == "application/json", (path, await response.text())
        body = await response.json()
        assert response.status in {200, 503}, (path, response.status, body)
        if response.status == 503 and path != "/readyz":
            assert body["error"]["code"] == "store_unavailable", body
            assert "store" in body["error"]["message"]
        return response.status


async def status_command(http: aiohttp.ClientSession, slack: FakeSlack) -> str:
    """``/rebalance status <pf>``: its ack's text (the slash command always answers 200)."""
    signed = signed_command("/rebalance", "status pf_chaos_0000", response_url=slack.response_url())
    async with (
        asyncio.timeout(10),
        http.post("/slack/events", data=signed.body, headers=signed.headers) as response,
    ):
        assert response.status == 200, await response.text()
        return str((await response.json())["text"])


async def probe(http: aiohttp.ClientSession, slack: FakeSlack) -> dict[str, int]:
    """Every path once; what each answered (the status command: 200 with a text)."""
    found = {"/readyz": await answer(http, "GET", "/readyz")}
    for path in ADMIN_PATHS:
        found[path] = await answer(http, "GET", path, headers=AUTH)
    assert await status_command(http, slack)
    return found


async def test_web_answers_clean_json_through_resets_and_a_blackout(
    proxy: TcpProxy,
    relay_procs: RelayProcesses,
    chaos_sim: SimStarter,
    fake_slack: FakeSlack,
) -> None:
    """Resets, then a blackout: readiness, admin and status answer 200 or a JSON 503, never
    500; /readyz is 503 in the blackout and 200 after; the process logs no traceback."""
    sim = await chaos_sim(1)
    port = free_port()
    relay_procs.env = full_env(proxy.url, sim, fake_slack, max_rps=200)
    web = await relay_procs.web(port)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

        async def all_ok() -> bool:
            try:
                return set((await probe(http, fake_slack)).values()) == {200}
            except aiohttp.ClientConnectionError:
                return False  # not listening yet

        await eventually(all_ok, within=20, step=0.1)
        for _ in range(RESET_ROUNDS):
            assert proxy.reset_all() > 0
            await probe(http, fake_slack)
        loop = asyncio.get_running_loop()
        proxy.faults = Faults(until=loop.time() + BLACKOUT_S, blackout=True)
        during = await probe(http, fake_slack)
        print(f"\nduring the blackout: {during}")  # pytest -s shows it
        assert during["/readyz"] == 503
        await eventually(all_ok, within=20, step=0.1)
    assert web.running
    assert not any("Traceback" in str(line) for line in web.log_lines())
    assert not any(line.get("message") == "unhandled error" for line in web.log_lines())
    assert await web.terminate() == 0
