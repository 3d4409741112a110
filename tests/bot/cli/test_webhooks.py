"""``glider-relay subscriptions`` and ``glider-relay deliveries`` against a real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from relay.core.ids import ulid
from relay.store import keys
from tests.bot.cli.support import run_cli


def test_add_list_rotate_rm(cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    """A subscription is added (secret shown once), listed, rotated and removed."""
    status, out, _ = run_cli(
        capsys, "subscriptions", "add", "https://93.184.216.34/hook", "--events", "rebalance.failed"
    )
    assert status == 0
    created = json.loads(out)
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["rebalance.failed"]
    status, out, _ = run_cli(capsys, "subscriptions", "list")
    assert created["id"] in out
    assert "whsec_" not in out
    status, out, _ = run_cli(capsys, "subscriptions", "rotate-secret", created["id"])
    assert status == 0
    assert "whsec_" in out
    assert created["secret"] not in out
    assert run_cli(capsys, "subscriptions", "rm", created["id"])[0] == 0
    status, _, err = run_cli(capsys, "subscriptions", "rm", created["id"])
    assert status == 1
    assert "no subscription" in err


def test_add_refuses_private_targets(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI applies the same SSRF rules as the admin API."""
    status, _, err = run_cli(capsys, "subscriptions", "add", "https://10.0.0.1/hook")
    assert status == 1
    assert "private" in err
    status, _, err = run_cli(
        capsys, "subscriptions", "add", "https://93.184.216.34/", "--events", "nope"
    )
    assert status == 1
    assert "unknown event type" in err
    assert cli_env.zcard(keys.SUBSCRIPTIONS) == 0


def test_missing_redis_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without REDIS_URL the command says so in one line and exits 2."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    status, _, err = run_cli(capsys, "deliveries", "list")
    assert status == 2
    assert "REDIS_URL" in err


def _dead_delivery(client: redis.Redis, sid: str) -> str:
    """A dead delivery of an enabled subscription, laid out as the dispatcher writes it."""
    did = "dlv_" + ulid()
    client.hset(keys.subscription(sid), mapping={"id": sid, "kind": "webhook", "enabled": "1"})
    client.hset(
        keys.delivery(did),
        mapping={
            "id": did,
            "subscriptionId": sid,
            "eventId": "evt_1",
            "eventType": "rebalance.failed",
            "webhookId": "msg_1",
            "status": "dead",
            "createdAt": 1,
            "n": 1,
            "a1": '{"at":"2026-11-22T12:00:00.000Z","statusCode":500,"latencyMs":7,"error":null}',
        },
    )
    for index in (
        keys.DELIVERIES,
        keys.deliveries_by_status("dead"),
        keys.subscription_deliveries(sid),
        keys.subscription_deliveries(sid, "dead"),
    ):
        client.zadd(index, {did: 0})
    return did


def test_deliveries_list_replay_recover(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dead deliveries are listed with their last answer, replayed, and recovered in bulk."""
    first = _dead_delivery(cli_env, "sub_a")
    second = _dead_delivery(cli_env, "sub_a")
    status, out, _ = run_cli(
        capsys, "deliveries", "list", "--status", "dead", "--subscription", "sub_a"
    )
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "STATUS", "SUBSCRIPTION", "EVENT"]
    assert "NEXT ATTEMPT" in header
    [row] = [r for r in rows if first in r]
    assert "2026-11-22 12:00:00Z  500" in row
    assert run_cli(capsys, "deliveries", "replay", first)[0] == 0
    assert cli_env.hget(keys.delivery(first), "status") == "pending"
    status, _, err = run_cli(capsys, "deliveries", "replay", first)
    assert status == 1
    # The admin API's words (relay/webhooks/deliveries.py REPLAY_REFUSALS), not a code.
    assert "the delivery is still queued; it can be replayed once it succeeded or died" in err
    status, _, err = run_cli(capsys, "deliveries", "replay", "dlv_nope")
    assert (status, err.strip()) == (1, "glider-relay: no delivery dlv_nope")
    status, out, _ = run_cli(capsys, "deliveries", "recover", "--since", "2000-01-01T00:00:00Z")
    assert status == 0
    assert "queued 1 dead or skipped" in out
    assert cli_env.hget(keys.delivery(second), "status") == "pending"
    status, out, _ = run_cli(capsys, "deliveries", "list", "--json")
    assert {d["id"] for d in json.loads(out)} == {first, second}
    status, out, _ = run_cli(capsys, "deliveries", "list", "--status", "failed")
    assert (status, out) == (0, "no deliveries match (status=failed)\n")


def test_lists_say_when_nothing_is_there(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty store: each list says so in words rather than printing nothing."""
    assert run_cli(capsys, "subscriptions", "list")[:2] == (0, "no subscriptions\n")
    assert run_cli(capsys, "deliveries", "list")[:2] == (0, "no deliveries match\n")


def test_recover_refuses_a_disabled_subscription(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """recover --subscription of a disabled one fails with the reason and queues nothing."""
    dead = _dead_delivery(cli_env, "sub_off")
    cli_env.hset(keys.subscription("sub_off"), "enabled", "0")
    status, _, err = run_cli(
        capsys,
        "deliveries",
        "recover",
        "--since",
        "2000-01-01T00:00:00Z",
        "--subscription",
        "sub_off",
    )
    assert status == 1
    assert "subscription sub_off is disabled; enable it first" in err
    assert cli_env.hget(keys.delivery(dead), "status") == "dead"
