"""Start-up checks, read from the logs of real ``web`` and ``worker`` processes: the Glider
key's scopes (``GET /v2/whoami``), a WARNING per unset optional setting that disables something."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from relay.core.clock import utc_now
from relay.settings import load_settings
from relay.sim.config import ADMIN_KEY, READONLY_KEY, SimConfig
from relay.sim.server import SimServer, start_sim
from relay.startup import unset_warnings
from tests.fixtures.glider import free_port
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
DEADLINE_S = 20.0


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = await start_sim(SimConfig.default(), clock=utc_now)
    yield server
    await server.stop()


class _Process:
    """A running sub-command and its JSON log lines, read until a wanted one appears."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    async def until(self, message: str) -> dict[str, Any]:
        """Read log lines until one has ``message`` (bounded); return it."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(DEADLINE_S):
            while raw := await self.proc.stderr.readline():
                self.lines.append(json.loads(raw))
                if self.lines[-1]["message"].startswith(message):
                    return self.lines[-1]
        raise AssertionError(f"the process ended without logging {message!r}")

    def warnings(self) -> list[str]:
        """The start-up checks' warnings (libraries' own, e.g. Bolt's, are not ours to judge)."""
        return [
            line["message"]
            for line in self.lines
            if line["level"] == "WARNING" and line["logger"] == "relay.startup"
        ]


@asynccontextmanager
async def _spawn(*argv: str, **env: str) -> AsyncIterator[_Process]:
    """``glider-relay ARGV`` in a clean environment plus ``env``; killed if still running."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, *argv, env=base | env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield _Process(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_worker_logs_the_keys_scopes_and_warns_without_write(
    redis_url: str, sim: SimServer
) -> None:
    """A read-only key: the worker logs its scopes, warns that portfolios:write is missing,
    and warns about SLACK_BOT_TOKEN and ONCALL_SLACK_CHANNEL being unset."""
    env = {"REDIS_URL": redis_url, "GLIDER_API_URL": sim.url, "GLIDER_API_KEY": READONLY_KEY}
    async with _spawn("worker", "--only", "poller", **env) as worker:
        checked = await worker.until("Glider key checked")
        await worker.until("Glider key lacks portfolios:write")
    assert checked["scopes"] == ["portfolios:read"]
    assert checked["tenant"] == "acme"
    warned = worker.warnings()
    assert any(w.startswith("SLACK_BOT_TOKEN is unset") for w in warned)
    assert any(w.startswith("ONCALL_SLACK_CHANNEL is unset") for w in warned)
    assert READONLY_KEY not in json.dumps(worker.lines)


async def test_worker_with_a_full_key_and_settings_warns_of_nothing(
    redis_url: str, sim: SimServer
) -> None:
    """portfolios:write present and both optional settings set: no start-up warning."""
    env = {
        "REDIS_URL": redis_url,
        "GLIDER_API_URL": sim.url,
        "GLIDER_API_KEY": ADMIN_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "ONCALL_SLACK_CHANNEL": "C0ONCALL",
    }
    async with _spawn("worker", "--only", "poller", **env) as worker:
        checked = await worker.until("Glider key checked")
    assert "portfolios:write" in checked["scopes"]
    assert worker.warnings() == []


async def test_an_unreachable_glider_at_start_does_not_stop_the_worker(redis_url: str) -> None:
    """whoami fails (nothing listens): one warning, and the worker keeps running until SIGTERM."""
    env = {
        "REDIS_URL": redis_url,
        "GLIDER_API_URL": f"http://127.0.0.1:{free_port()}",
        "GLIDER_API_KEY": ADMIN_KEY,
    }
    async with _spawn("worker", "--only", "poller", **env) as worker:
        await worker.until("worker started")
        failed = await worker.until("Glider key: could not read its scopes")
        assert worker.proc.returncode is None
        worker.proc.send_signal(signal.SIGTERM)
        await worker.until("worker stopped")
        assert await asyncio.wait_for(worker.proc.wait(), DEADLINE_S) == 0
    assert "cannot connect" in failed["error"]


async def test_web_warns_about_each_unset_optional_setting(redis_url: str) -> None:
    """web without SLACK_BOT_TOKEN, RELAY_ADMIN_TOKEN and BOT_ALLOWED_USERS says what each
    leaves off, once, before it listens; with them set it warns of nothing."""
    env = {"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "PORT": "0"}
    async with _spawn("web", "--host", "127.0.0.1", **env) as bare:
        await bare.until("web listening")
    warned = bare.warnings()
    for name in ("SLACK_BOT_TOKEN", "RELAY_ADMIN_TOKEN", "BOT_ALLOWED_USERS"):
        assert sum(w.startswith(f"{name} is unset") for w in warned) == 1, (name, warned)
    full = env | {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "RELAY_ADMIN_TOKEN": "a-long-enough-admin-token",
        "BOT_ALLOWED_USERS": "*",
    }
    async with _spawn("web", "--host", "127.0.0.1", **full) as configured:
        await configured.until("web listening")
    assert configured.warnings() == []


def test_a_policy_file_makes_bot_allowed_users_irrelevant(tmp_path: Path) -> None:
    """With RELAY_POLICY_FILE, BOT_ALLOWED_USERS is ignored: its absence is no warning."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[roles]\nops = ["U012AB3CD"]\n\n[[rules]]\nportfolios = ["*"]\n')
    without = unset_warnings(load_settings(), "web")
    assert any(w.startswith("BOT_ALLOWED_USERS is unset") for w in without)
    with_policy = unset_warnings(load_settings(relay_policy_file=str(policy)), "web")
    assert not any(w.startswith("BOT_ALLOWED_USERS") for w in with_policy)
