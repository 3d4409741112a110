"""``glider-relay worker``'s hidden tuning flags parse into the worker's timings."""

from __future__ import annotations

import argparse

import pytest

from bot.cli.main import build_parser
from relay.webhooks.schedule import DEFAULT_DELAYS_S
from relay.worker.process import parse_delays
from relay.worker.registry import Tuning


def test_webhook_delays_flag_is_a_schedule_in_seconds() -> None:
    """``--webhook-delays-s 0,0.5,30`` is the tuple of waits before each attempt."""
    args = build_parser().parse_args(["worker", "--webhook-delays-s", "0,0.5,30"])
    assert args.webhook_delays_s == (0.0, 0.5, 30.0)


def test_webhook_delays_default_is_the_production_schedule() -> None:
    """Without the flag the worker keeps the 24-hour-plus production schedule."""
    assert build_parser().parse_args(["worker"]).webhook_delays_s is None
    assert Tuning().webhook_delays_s == DEFAULT_DELAYS_S


@pytest.mark.parametrize("bad", ["", "1,,2", "fast", "0,-1"])
def test_webhook_delays_refuses_what_is_not_a_list_of_seconds(bad: str) -> None:
    """Empty parts, words and negative waits are refused."""
    with pytest.raises(argparse.ArgumentTypeError, match=r"seconds|negative"):
        parse_delays(bad)
