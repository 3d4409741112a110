"""The access policy (RELAY_POLICY_FILE) end to end: refusals, user groups, bad files."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.settings import ConfigError, load_settings, policy_at_start
from relay.store import keys
from tests.fixtures.web import WebFactory

POLICY = """
[roles]
operators = ["UOP1", "S0OPS"]
approvers = ["UAP2", "UAP3"]

[[rules]]
portfolios = ["pf_treasury_*"]
rebalance = ["operators"]
pause = ["operators", "approvers"]
resume = ["operators"]
approve = ["approvers"]
require_approval = true

[[rules]]
portfolios = ["pf_*"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
"""


def policy_file(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def policy_web(web_factory: WebFactory, redis: aioredis.Redis, tmp_path: Path) -> Any:
    # UAP2 is allowed by BOT_ALLOWED_USERS, which a policy file overrides.
    return await web_factory(
        redis, relay_policy_file=str(policy_file(tmp_path)), bot_allowed_users="UAP2"
    )


@pytest.mark.parametrize(
    "case",
    [
        ("/rebalance", "pf_main", "operators"),
        ("/resume", "pf_main", "operators"),
        ("/pause", "pf_treasury_1", "approvers"),
    ],
)
async def test_a_refusal_names_the_role_and_queues_nothing(
    web_factory: WebFactory, any_redis: aioredis.Redis, tmp_path: Path, case: tuple[str, str, str]
) -> None:
    command, text, role = case
    web = await policy_web(web_factory, any_redis, tmp_path)
    ack = await web.command(command, text, user_id="U9XX", user_name="mallory")
    assert f"`{role}`" in ack["text"]
    assert "Nothing was done" in ack["text"]
    assert await web.queued() == []
    assert await any_redis.exists(keys.COMMAND_STREAM) == 0


async def test_a_portfolio_no_rule_matches_is_refused(
    web_factory: WebFactory, any_redis: aioredis.Redis, tmp_path: Path
) -> None:
    web = await policy_web(web_factory, any_redis, tmp_path)
    ack = await web.command("/pause", "a1b2c3d4", user_id="UOP1")
    assert "none matches" in ack["text"]
    assert await web.queued() == []


async def test_policy_ignores_bot_allowed_users_and_lets_role_holders_act(
    web_factory: WebFactory, any_redis: aioredis.Redis, tmp_path: Path
) -> None:
    """UAP2 is in BOT_ALLOWED_USERS but not an operator: refused; UOP1 is one: queued."""
    web = await policy_web(web_factory, any_redis, tmp_path)
    refused = await web.command("/pause", "pf_main", user_id="UAP2")
    assert "`operators`" in refused["text"]
    await web.command("/pause", "pf_main", user_id="UOP1")
    (command,) = await web.queued()
    assert command.requested_by.user_id == "UOP1"


async def test_status_needs_any_role_of_the_rule(
    web_factory: WebFactory, any_redis: aioredis.Redis, tmp_path: Path
) -> None:
    web = await policy_web(web_factory, any_redis, tmp_path)
    refused = await web.command("/rebalance", "status pf_treasury_1", user_id="U9XX")
    assert "`operators`" in refused["text"]
    assert "`approvers`" in refused["text"]
    shown = await web.command("/rebalance", "status pf_treasury_1", user_id="UAP3")
    assert "Status of" in shown["text"]


async def test_user_group_members_hold_its_roles_and_the_lookup_is_cached(
    web_factory: WebFactory, any_redis: aioredis.Redis, tmp_path: Path
) -> None:
    web = await policy_web(web_factory, any_redis, tmp_path)
    web.slack.usergroups["S0OPS"] = ["U7GG"]
    await web.command("/pause", "pf_main", user_id="U7GG", user_name="grace")
    await web.command("/resume", "pf_main", user_id="U7GG", user_name="grace")
    assert [c.requested_by.user_id for c in await web.queued()] == ["U7GG", "U7GG"]
    (lookup,) = web.slack.calls_to("usergroups.users.list")
    assert lookup.payload["usergroup"] == "S0OPS"


async def test_a_failing_group_lookup_grants_nothing_and_is_not_retried_at_once(
    web_factory: WebFactory,
    any_redis: aioredis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    web = await policy_web(web_factory, any_redis, tmp_path)
    web.slack.fail_next(10, status=500, retry_after=None, method="usergroups.users.list")
    for _ in range(3):
        ack = await web.command("/pause", "pf_main", user_id="U7GG")
        assert "`operators`" in ack["text"]
    assert await web.queued() == []
    # One bounded lookup (with the client's own retries), then the failure is remembered.
    assert len(web.slack.calls_to("usergroups.users.list", include_failed=True)) <= 3
    assert "usergroups.users.list failed" in caplog.text


def _cli_env(**extra: str) -> dict[str, str]:
    keep = ("REDIS_", "SLACK_", "GLIDER_", "BOT_", "RELAY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    return (
        env
        | {
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "SLACK_SIGNING_SECRET": "a-signing-secret-long-enough",
            "GLIDER_API_KEY": "gldr_sk_test_key_1234",
            "LOG_LEVEL": "WARNING",
        }
        | extra
    )


@pytest.mark.parametrize("process", ["web", "worker"])
@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            '[roles]\nops = ["UOP1"]\n\n[[rules]]\nportfolios = ["*"]\nrebalance = ["opz"]\n',
            6,
            "opz",
        ),
        ('[roles]\nops = ["UOP1"]\n[[rules]]\nportfolios = ["*"]\ncolour = "blue"\n', 5, "colour"),
        ("[roles\n", 1, "not valid TOML"),
    ],
)
def test_a_bad_policy_file_stops_web_and_worker_naming_the_line(
    tmp_path: Path, process: str, text: str, line: int, words: str
) -> None:
    path = policy_file(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "bot", process],
        env=_cli_env(RELAY_POLICY_FILE=str(path)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:{line}:" in done.stderr
    assert words in done.stderr
    assert "RELAY_POLICY_FILE" in done.stderr


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    settings = load_settings(relay_policy_file=str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="RELAY_POLICY_FILE cannot be read"):
        policy_at_start(settings, "web")


def test_both_policy_file_and_allowed_users_warn_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(relay_policy_file=str(policy_file(tmp_path)), bot_allowed_users="UOP1")
    with caplog.at_level(logging.WARNING):
        policy = policy_at_start(settings, "worker")
    assert policy.from_file
    assert "BOT_ALLOWED_USERS is ignored" in caplog.text


def test_without_a_policy_file_allowed_users_decide_as_before() -> None:
    settings = load_settings(bot_allowed_users="UOP1")
    policy = policy_at_start(settings, "web")
    assert not policy.from_file
    assert policy.allowed_users == frozenset({"UOP1"})
