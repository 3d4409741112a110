"""``glider-relay audit list`` against a real Redis: header, rows, filters, JSON, empty."""

from __future__ import annotations

import json

import pytest
import redis

from bot.cli.audit import HEADER
from bot.cli.main import main
from relay.core.audit import AuditAction, AuditActor, new_entry
from relay.store import keys
from relay.store.audit import ENTRY_FIELD
from tests.bot.cli.support import run_cli


def test_an_empty_log_says_so(cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing logged (or nothing matching): one line, exit 0."""
    assert run_cli(capsys, "audit", "list") == (0, "no entries match\n", "")


def test_cli_changes_are_listed_newest_first_with_a_header(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's own admin changes are audited (actor admin) and listed; filters narrow."""
    status, out, _ = run_cli(capsys, "subscriptions", "add", "https://93.184.216.34/hook?k=secret")
    sid = json.loads(out)["id"]
    run_cli(capsys, "subscriptions", "rotate-secret", sid)
    run_cli(capsys, "subscriptions", "rm", sid)
    refusal = new_entry(
        AuditAction.COMMAND_REFUSED,
        AuditActor.slack("T1", "U1", "alice"),
        portfolio_id="pf_1",
        detail="/pause pf_1 \x1b[31mred\x1b[0m: not allowed",
    )
    cli_env.xadd(keys.AUDIT, {ENTRY_FIELD: refusal.to_json()})
    status, out, _ = run_cli(capsys, "audit", "list")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == list(HEADER)
    assert [row.split()[1] for row in rows] == [
        "command.refused",
        "subscription.deleted",
        "subscription.secret_rotated",
        "subscription.created",
    ]
    assert "slack:U1 (alice)" in rows[0]
    assert "\x1b" not in out
    assert "\\x1b[31mred" in rows[0]
    assert rows[3].split()[2:4] == ["admin", "-"]
    assert sid in rows[3]
    assert rows[3].endswith("https://93.184.216.34; events *")
    assert "secret" not in rows[3]
    _, out, _ = run_cli(capsys, "audit", "list", "--user", "U1")
    assert len(out.splitlines()) == 2
    _, out, _ = run_cli(capsys, "audit", "list", "--action", "subscription", "--limit", "2")
    assert [row.split()[1] for row in out.splitlines()[1:]] == [
        "subscription.deleted",
        "subscription.secret_rotated",
    ]
    _, out, _ = run_cli(capsys, "audit", "list", "--portfolio", "pf_1", "--json")
    assert [e["id"] for e in json.loads(out)] == [refusal.id]
    _, out, _ = run_cli(capsys, "audit", "list", "--since", "2999-01-01T00:00:00Z")
    assert out == "no entries match\n"


def test_bad_arguments_are_refused(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown action, a limit out of range or a bad time: usage error, exit 2."""
    for argv in (["--action", "nope"], ["--limit", "0"], ["--limit", "501"], ["--since", "x"]):
        with pytest.raises(SystemExit) as exited:
            main(["audit", "list", *argv])
        assert exited.value.code == 2
        assert "audit list" in capsys.readouterr().err
