"""``glider-relay slack send`` against a real ``glider-relay web`` process on real Redis."""

from __future__ import annotations

import asyncio
import sys

import pytest
import redis.asyncio as aioredis

from bot.devtools.slack_send import split_command
from relay.store import keys
from tests import ROOT
from tests.bot.test_web_process import CLI, _env, _web
from tests.fixtures.redis_server import free_port
from tests.fixtures.slack import LOOPBACK_HOST, SIGNING_SECRET


async def _send(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        "slack",
        "send",
        *argv,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_slack_send_signs_posts_and_prints_the_ack(
    redis_url: str, real_redis: aioredis.Redis
) -> None:
    """Signed with SLACK_SIGNING_SECRET, it is queued by the web; a wrong secret is a 401."""
    env = _env(
        REDIS_URL=redis_url,
        PORT="0",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_RESPONSE_URL_HOSTS=LOOPBACK_HOST,
        BOT_ALLOWED_USERS="U9",
        LOG_LEVEL="INFO",
    )
    async with _web(env) as (_process, url):
        code, out, err = await _send(env, "/pause pf_1 maintenance", "--user", "U9", "--url", url)
        assert code == 0, err
        assert "pf_1" in out
        assert "req_" in out
        assert await real_redis.xlen(keys.COMMAND_STREAM) == 1
        wrong = env | {"SLACK_SIGNING_SECRET": "another-signing-secret-0123"}
        code, out, err = await _send(wrong, "/pause pf_1", "--user", "U9", "--url", url)
        assert (code, out) == (1, "")
        assert f"{url} answered 401" in err
        assert await real_redis.xlen(keys.COMMAND_STREAM) == 1


async def test_slack_send_refusals_are_one_line() -> None:
    """No secret, not a slash command, or no web listening: one line each, no traceback."""
    code, _, err = await _send(_env(), "/pause pf_1")
    assert (code, err.count("\n")) == (2, 1)
    assert "SLACK_SIGNING_SECRET" in err
    env = _env(SLACK_SIGNING_SECRET=SIGNING_SECRET)
    code, _, err = await _send(env, "pause pf_1")
    assert (code, err.count("\n")) == (2, 1)
    assert "starts with /" in err
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await _send(env, "/pause pf_1", "--url", url)
    assert (code, err.count("\n")) == (1, 1)
    assert f"cannot reach {url}" in err


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        ("/rebalance pf_x", ("/rebalance", "pf_x")),
        ("  /pause pf_x  why  ", ("/pause", "pf_x  why")),
    ],
)
def test_split_command(line: str, parts: tuple[str, str]) -> None:
    """The command is the first word; the rest, trimmed, is its text."""
    assert split_command(line) == parts
