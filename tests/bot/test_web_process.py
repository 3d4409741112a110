"""``glider-relay web`` as a process: refuses bad config, serves, and stops gracefully."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from relay.store import keys
from tests import ROOT
from tests.fixtures.redis_server import free_port
from tests.fixtures.slack import BOT_TOKEN, LOOPBACK_HOST, SIGNING_SECRET, FakeSlack, signed_command

CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
DEADLINE_S = 15.0


def _env(**values: str) -> dict[str, str]:
    """A clean environment: nothing of docs/contract.md §3 leaks in from the developer's shell."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    return base | values


async def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        "web",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_missing_redis_url_exits_2_with_one_line() -> None:
    """Without REDIS_URL the process refuses to start, naming the variable."""
    code, err = await _run(_env(SLACK_SIGNING_SECRET=SIGNING_SECRET))
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "REDIS_URL" in err


async def test_missing_signing_secret_exits_2() -> None:
    """HTTP mode needs SLACK_SIGNING_SECRET."""
    # A port nothing listens on: the check comes first, and no Redis of the machine is touched.
    code, err = await _run(_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert code == 2
    assert "SLACK_SIGNING_SECRET" in err


@dataclass
class _WebProcess:
    """A running ``glider-relay web`` and every log line read from it so far."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def until(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read JSON log lines until one matches (bounded)."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(DEADLINE_S):
            while raw := await self.proc.stderr.readline():
                self.lines.append(raw.decode())
                entry: dict[str, Any] = json.loads(raw)
                if match(entry):
                    return entry
        raise AssertionError("the process ended without that log line")

    async def all_logs(self) -> str:
        """Everything it logged (call once it has exited)."""
        assert self.proc.stderr is not None
        return "".join(self.lines) + (await self.proc.stderr.read()).decode()


@asynccontextmanager
async def _web(env: dict[str, str]) -> AsyncIterator[tuple[_WebProcess, str]]:
    """Start ``glider-relay web`` on a free port; yield it and its base URL once it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        "web",
        "--host",
        "127.0.0.1",
        env=env,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    web_process = _WebProcess(proc)
    try:
        line = await web_process.until(lambda entry: entry["message"] == "web listening")
        host, port = line["address"][0]
        yield web_process, f"http://{host}:{port}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@dataclass
class _Gate:
    """A Glider stand-in whose portfolio read waits until the test opens the gate."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def portfolio(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self.release.wait()
        detail = {"portfolioId": request.match_info["id"], "schedule": {"status": "active"}}
        return web.json_response({"success": True, "data": detail})


@asynccontextmanager
async def _gated_glider() -> AsyncIterator[tuple[_Gate, str]]:
    gate = _Gate()
    app = web.Application()
    app.router.add_get("/v2/portfolios/{id}", gate.portfolio)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield gate, f"http://{host}:{port}"
    finally:
        gate.release.set()
        await runner.cleanup()


async def test_web_serves_queues_and_stops_on_sigterm(
    redis_url: str, real_redis: aioredis.Redis, fake_slack: FakeSlack
) -> None:
    """The process queues a signed command, finishes an in-flight request on SIGTERM, exits 0."""
    async with _gated_glider() as (gate, glider_url):
        env = _env(
            REDIS_URL=redis_url,
            PORT="0",
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_API_URL=fake_slack.api_url,
            SLACK_RESPONSE_URL_HOSTS=LOOPBACK_HOST,
            BOT_ALLOWED_USERS="U1",
            GLIDER_API_URL=glider_url,
            GLIDER_API_KEY="gldr_sk_test",
            LOG_LEVEL="INFO",
        )
        async with _web(env) as (process, url), aiohttp.ClientSession(url) as http:
            assert (await http.get("/readyz")).status == 200
            queued = signed_command("/resume", "pf_1")
            async with http.post("/slack/events", data=queued.body, headers=queued.headers) as r:
                assert r.status == 200
            assert await real_redis.xlen(keys.COMMAND_STREAM) == 1
            status = signed_command("/rebalance", "status pf_1")
            in_flight = asyncio.ensure_future(
                http.post("/slack/events", data=status.body, headers=status.headers)
            )
            await asyncio.wait_for(gate.arrived.wait(), DEADLINE_S)
            process.proc.send_signal(signal.SIGTERM)
            await process.until(lambda entry: entry["message"] == "web stopping")
            gate.release.set()
            response = await in_flight
            assert response.status == 200
            assert "Schedule: *active*" in str((await response.json())["blocks"])
            code = await asyncio.wait_for(process.proc.wait(), 10)
            logs = await process.all_logs()
    assert code == 0
    for secret in (SIGNING_SECRET, BOT_TOKEN, "gldr_sk_test"):
        assert secret not in logs


async def test_refused_slack_requests_are_one_warning_each_and_counted(
    redis_url: str, fake_slack: FakeSlack
) -> None:
    """Forged, stale, unknown-command and unauthorized requests: one WARNING each with its
    reason and no secret; forged ones counted; Bolt's start-up notes and code samples absent."""
    env = _env(
        REDIS_URL=redis_url,
        PORT="0",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,  # Bolt reads it from the environment and says "unused"
        SLACK_API_URL=fake_slack.api_url,
        BOT_ALLOWED_USERS="U1",
        LOG_LEVEL="INFO",
    )
    async with _web(env) as (process, url), aiohttp.ClientSession(url) as http:
        forged = signed_command("/pause", "pf_1", secret="not-the-signing-secret-at-all")
        stale = signed_command("/pause", "pf_1", timestamp=int(time.time()) - 3600)
        for request in (forged, stale):
            async with http.post("/slack/events", data=request.body, headers=request.headers) as r:
                assert r.status == 401
        async with http.post("/slack/events", data=b"text=x") as r:
            assert r.status == 401
        unknown = signed_command("/deploy", "prod")
        async with http.post("/slack/events", data=unknown.body, headers=unknown.headers) as r:
            assert r.status == 404
        outsider = signed_command("/pause", "pf_1", user_id="U666")
        async with http.post("/slack/events", data=outsider.body, headers=outsider.headers) as r:
            assert r.status == 200
        async with http.get("/metrics") as r:
            scraped = await r.text()
        process.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.proc.wait(), 10)
        logs = await process.all_logs()
    entries = [json.loads(line) for line in logs.splitlines()]
    refused = [e for e in entries if e["message"].startswith("refused Slack request")]
    assert [(e["level"], e["reason"]) for e in refused] == [
        ("WARNING", "mismatch"),
        ("WARNING", "stale"),
        ("WARNING", "unsigned"),
        ("WARNING", "unhandled"),
        ("WARNING", "unauthorized"),
    ]
    assert "signature does not match" in refused[0]["message"]
    assert "Suggestion" not in logs
    assert "@app.command" not in logs
    assert "will be unused" not in logs
    assert "will be ignored" not in logs
    for secret in (SIGNING_SECRET, BOT_TOKEN, "not-the-signing-secret-at-all"):
        assert secret not in logs
    for reason, count in (("mismatch", 1), ("stale", 1), ("unsigned", 1)):
        assert (
            f'glider_relay_slack_requests_refused_total{{reason="{reason}"}} {count}.0' in scraped
        )


async def test_a_busy_port_is_one_line() -> None:
    """PORT in use: one line naming it, exit 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = await _run(
            _env(
                REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                PORT=str(port),
            ),
            "--host",
            "127.0.0.1",
        )
    assert code == 2
    # Besides the start-up warnings about unset optional settings (JSON log lines):
    plain = [line for line in err.splitlines() if not line.startswith("{")]
    assert plain == [
        f"glider-relay web: web (PORT) cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in err
