"""``glider-relay dev`` and ``demo`` as a newcomer runs them: real processes, loopback only."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.dev import without_password
from bot.devtools.slack_standin import button_value
from relay.sim.config import PF_MAIN
from tests.fixtures.slack import SignedRequest, signed_action, signed_command

CLI = [sys.executable, "-m", "bot"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_", "GLIDER_"))}
    env["LOG_LEVEL"] = "WARNING"
    return env


def test_demo_tells_the_story_and_exits_zero() -> None:
    """The demo narrates preview and confirm, queue, submit, poll, completion, verified
    webhooks, on-call and an approval by a second person, exit 0."""
    done = subprocess.run(
        [*CLI, "demo"], capture_output=True, text=True, timeout=60, env=_env(), check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in (
        "subscribed",
        "Slack ack (ephemeral): :warning: Rebalance",
        "clicking Confirm (signed like Slack)",
        "preview replaced: Queued a rebalance",
        "webhook rebalance.requested delivered, signature verified",
        "webhook rebalance.submitted delivered, signature verified",
        "Glider was polled",
        "webhook rebalance.completed delivered, signature verified",
        "its job card, kept current in the channel",
        "webhook rebalance.failed delivered, signature verified",
        "on-call alert",
        "approval request posted in C0APPROVALS",
        "the requester's own Approve is refused",
        "request updated in place (chat.update): :white_check_mark: Approved by <@U0APPROVER>",
        "webhook rebalance.approved delivered, signature verified",
        "demo complete",
    ):
        assert step in out, f"missing step {step!r} in:\n{out}"


def test_dev_prints_banner_and_stops_cleanly_on_sigterm() -> None:
    """dev says what runs where and that nothing persists, then exits 0 on SIGTERM."""
    with subprocess.Popen(
        [*CLI, "dev", "--port", "0", "--sim-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    ) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("try it:" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        banner = "".join(lines)
        assert "embedded in-process store (nothing persists" in banner
        assert "REDIS_URL=" in banner
        assert "Glider sim" in banner
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def _banner_value(banner: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+(\S+)", banner, re.MULTILINE)
    assert match, f"no {label!r} in the banner:\n{banner}"
    return match.group(1)


def _read_banner(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace")
        if "try it:" in text:
            return text
        time.sleep(0.05)
    pytest.fail(f"dev printed no banner:\n{log.read_text(errors='replace')}")


def _wait_logged(log: Path, needle: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.1)
    pytest.fail(f"{needle!r} not in dev's output within {within} s:\n{log.read_text()}")


def _send_rebalance(banner: str) -> None:
    """A /rebalance signed with the session's secret, as Slack would send it to dev."""
    request = signed_command(
        "/rebalance",
        PF_MAIN,
        secret=_banner_value(banner, "signing secret"),
        response_url=f"{_banner_value(banner, 'Slack stand-in')}/response/1",
    )
    web_url = _banner_value(banner, "web")
    ack = _post(f"{web_url}/slack/events", request)
    # dev asks for confirmation (BOT_CONFIRM_REBALANCE defaults to true): click Confirm.
    token = button_value(ack, "rebalance.confirm")
    assert token is not None, ack
    click = signed_action(
        "rebalance.confirm",
        token,
        secret=_banner_value(banner, "signing secret"),
        response_url=f"{_banner_value(banner, 'Slack stand-in')}/response/2",
    )
    _post(f"{web_url}/slack/events", click)


def _post(url: str, request: SignedRequest) -> dict[str, Any]:
    http = urllib.request.Request(  # noqa: S310 - loopback URL from dev's banner
        url, data=request.body.encode(), headers=request.headers
    )
    with urllib.request.urlopen(http, timeout=10) as response:  # noqa: S310
        assert response.status == 200
        raw = response.read()
    answer: dict[str, Any] = json.loads(raw) if raw else {}
    return answer


def test_dev_on_a_real_redis_executes_promptly_without_read_timeouts(
    redis_url: str, tmp_path: Path
) -> None:
    """REDIS_URL=... dev: a queued /rebalance is executed and replied to, and the worker's
    blocking reads never hit the socket timeout (web's 1 s timeout once raced them)."""
    log = tmp_path / "dev.log"
    env = _env() | {"REDIS_URL": redis_url, "LOG_LEVEL": "INFO"}
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [*CLI, "dev", "--port", "0", "--sim-port", "0"], stdout=out, stderr=out, env=env
        ) as proc,
    ):
        try:
            banner = _read_banner(log, proc)
            assert f"Redis at {redis_url}" in banner
            _send_rebalance(banner)
            # Generous deadlines: the point is that it happens, not how fast.
            _wait_logged(log, "executing rebalance", within=20)
            # Until the reply, the worker sat on idle blocking reads for seconds.
            _wait_logged(log, "via response_url] ", within=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
    assert "Timeout reading" not in log.read_text(errors="replace")


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv], capture_output=True, text=True, timeout=30, env=env, check=False
    )


def test_dev_can_be_driven_from_its_banner(redis_url: str, tmp_path: Path) -> None:
    """dev with the simulator's fault flags on a real Redis: the banner lists the portfolios
    and the slack send line; that line queues a rebalance that fails as the flag says; the
    CLI on the same Redis lists it; a real Slack response_url is one warning, not a storm."""
    log = tmp_path / "dev.log"
    # Queued at once: `slack send` cannot click a preview's Confirm button.
    # Cards off: this checks the response_url replies (a card is the reply otherwise).
    env = _env() | {
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "INFO",
        "BOT_CONFIRM_REBALANCE": "false",
        "RELAY_JOB_CARDS": "false",
    }
    flags = ["--failure-rate", "1", "--op-duration", "0.2", "--cooldown", "0"]
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [*CLI, "dev", "--port", "0", "--sim-port", "0", *flags], stdout=out, stderr=out, env=env
        ) as proc,
    ):
        try:
            banner = _read_banner(log, proc)
            assert PF_MAIN in banner
            assert "Alice Conservative Yield" in banner
            hint = re.search(r"send a command\s+(.+)$", banner, re.MULTILINE)
            assert hint, banner
            words = shlex.split(hint.group(1))
            assert words[0].startswith("SLACK_SIGNING_SECRET=")
            assert words[1:5] == ["glider-relay", "slack", "send", f"/rebalance {PF_MAIN}"]
            secret = words[0].split("=", 1)[1]
            sent = _cli(env | {"SLACK_SIGNING_SECRET": secret}, *words[2:])
            assert sent.returncode == 0, sent.stderr
            assert "Queued a rebalance" in sent.stdout
            # The outcome: failed (--failure-rate 1), told by DM (no response_url), on-call paged.
            _wait_logged(log, "[slack -> C0ONCALL", within=30)
            listed = _cli(env, "operations", "list", "--state", "failed")
            assert listed.returncode == 0, listed.stderr
            assert PF_MAIN in listed.stdout
            assert listed.stdout.startswith("REQUEST ")
            real_slack = signed_command(
                "/pause",
                PF_MAIN,
                secret=secret,
                response_url="https://hooks.slack.com/commands/T1/1/abc",
            )
            web_url = hint.group(1).rsplit("--url ", 1)[1].strip()
            http = urllib.request.Request(  # noqa: S310 - loopback URL from dev's banner
                f"{web_url}/slack/events", data=real_slack.body.encode(), headers=real_slack.headers
            )
            with urllib.request.urlopen(http, timeout=10) as response:  # noqa: S310
                assert response.status == 200
            text = _wait_logged(log, "is paused", within=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    hosts = [line for line in lines if "SLACK_RESPONSE_URL_HOSTS" in line["message"]]
    assert len(hosts) == 1, text
    assert not [line for line in lines if line["level"] == "ERROR"], text


def test_the_banner_never_shows_a_redis_password() -> None:
    """REDIS_URL with a password: the banner names the server, never the password."""
    shown = without_password("redis://user:s3cr3tpass@10.0.0.5:6380/2")
    assert "s3cr3tpass" not in shown
    assert shown == "redis://***@10.0.0.5:6380/2"
    assert without_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
