"""``glider-relay dev`` and ``demo`` as a newcomer runs them: real processes, loopback only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "bot"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_", "GLIDER_"))}
    env["LOG_LEVEL"] = "WARNING"
    return env


def test_demo_tells_the_story_and_exits_zero() -> None:
    """The demo narrates queue, submit, poll, completion, verified webhooks and on-call, exit 0."""
    done = subprocess.run(
        [*CLI, "demo"], capture_output=True, text=True, timeout=60, env=_env(), check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in (
        "subscribed",
        "Slack ack (ephemeral): Queued a rebalance",
        "webhook rebalance.requested delivered, signature verified",
        "webhook rebalance.submitted delivered, signature verified",
        "Glider was polled",
        "webhook rebalance.completed delivered, signature verified",
        "reply to the requester",
        "webhook rebalance.failed delivered, signature verified",
        "on-call alert",
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
