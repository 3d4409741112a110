"""The Procfile under honcho, as an operator runs it: Slack in, outcome out, no secret in the logs.

``honcho start`` runs ``web`` and ``worker`` from the Procfile against the real
Redis, the Glider simulator and the fake Slack, with every secret set to a
realistic value and ``LOG_LEVEL=DEBUG``; a signed ``/rebalance`` must come back
as a completed reply, and no secret may appear anywhere in the processes' output.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from relay.sim.config import ADMIN_KEY, PF_MAIN, SimConfig
from relay.sim.server import SimServer, start_sim
from tests import ROOT
from tests.fixtures.glider import free_port
from tests.fixtures.slack import (
    BOT_TOKEN,
    LOOPBACK_HOST,
    RESPONSE,
    SIGNING_SECRET,
    FakeSlack,
    signed_command,
)

ADMIN_TOKEN = "adm_4f1c9b2e7d3a48c6a1f0e5d2c7b9a3e1"
PAGERDUTY_KEY = "pd_routing_3e8a1c5f9b7d4e2a6c0f8b1d3e5a7c9f"


@pytest.fixture
async def live_sim() -> AsyncIterator[SimServer]:
    """The simulator on the real clock: operations finish half a second after submission."""
    server = await start_sim(SimConfig.default().with_overrides(op_duration_s=0.5))
    yield server
    await server.stop()


def _honcho_env(redis_url: str, sim: SimServer, slack: FakeSlack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GLIDER_"))}
    env.update(
        REDIS_URL=redis_url,
        GLIDER_API_URL=sim.url,
        GLIDER_API_KEY=ADMIN_KEY,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=slack.api_url,
        SLACK_RESPONSE_URL_HOSTS=LOOPBACK_HOST,
        RELAY_JOB_CARDS="false",  # the outcome reply through response_url is checked here
        BOT_ALLOWED_USERS="U1",
        BOT_CONFIRM_REBALANCE="false",  # confirmation has its own end-to-end tests
        RELAY_ADMIN_TOKEN=ADMIN_TOKEN,
        PAGERDUTY_ROUTING_KEY=PAGERDUTY_KEY,
        LOG_LEVEL="DEBUG",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


async def _wait_healthy(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(300):  # bounded: about 15 s at most
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"{url} never answered 200")


async def test_honcho_serves_slack_end_to_end_without_leaking_secrets(
    redis_url: str, live_sim: SimServer, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """honcho start: /rebalance is acked, completes, is replied to; output has no secret."""
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or shutil.which("honcho")
    assert honcho, "honcho is a dev dependency"
    port = free_port()
    log_path = tmp_path / "honcho.log"
    with log_path.open("w") as log_file:
        proc = await asyncio.create_subprocess_exec(
            honcho,
            "start",
            "-f",
            str(ROOT / "Procfile"),
            "-p",
            str(port),
            cwd=tmp_path,
            env=_honcho_env(redis_url, live_sim, fake_slack),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            async with aiohttp.ClientSession() as http:
                await _wait_healthy(http, f"http://127.0.0.1:{port}/readyz")
                request = signed_command(
                    "/rebalance", PF_MAIN, user_id="U1", response_url=fake_slack.response_url()
                )
                async with http.post(
                    f"http://127.0.0.1:{port}/slack/events",
                    data=request.body,
                    headers=request.headers,
                ) as response:
                    assert response.status == 200
                    ack = await response.json()
            assert "Queued a rebalance" in ack["text"]
            [reply] = await fake_slack.wait_for(RESPONSE, 1, within=30)
            assert "completed" in json.dumps(reply.payload)
        finally:
            # honcho reports its shells' signal status, not ours: the graceful stop of
            # each process is read from its own log lines below.
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=20)
    output = log_path.read_text()
    for secret in (ADMIN_KEY, SIGNING_SECRET, BOT_TOKEN, ADMIN_TOKEN, PAGERDUTY_KEY):
        assert secret not in output, f"a secret leaked into the logs: {secret[:6]}..."
    json_lines = [line.split("| ", 1)[1] for line in output.splitlines() if "| {" in line]
    records = [json.loads(line) for line in json_lines]
    assert any(r.get("request_id", "").startswith("req_") for r in records)
    messages = {r["message"] for r in records}
    assert {"web stopping", "worker stopped"} <= messages
