"""JSON log lines and secret redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from relay.logs import JsonFormatter, configure_logging, redact, register_secrets


def test_log_line_is_json_with_context() -> None:
    """A record renders as one JSON object carrying its extra context."""
    record = logging.makeLogRecord(
        {
            "name": "relay.t",
            "levelname": "INFO",
            "msg": "polled %s",
            "args": ("op",),
            "request_id": "req_1",
            "portfolio_id": "pf_1",
        }
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "polled op"
    assert payload["request_id"] == "req_1"
    assert payload["portfolio_id"] == "pf_1"
    assert payload["level"] == "INFO"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_registered_secrets_never_reach_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A secret in the message, in extras or in an exception is replaced."""
    secret = "gldr_sk_live_abcdef123456"
    configure_logging("INFO", secrets=[secret])
    log = logging.getLogger("relay.test")
    log.warning("header was %s", secret, extra={"key": secret})
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("[REDACTED]") >= 3


def test_short_values_are_not_registered() -> None:
    """Tiny values (e.g. empty or 'abc') are not treated as secrets, or logs would be mush."""
    register_secrets(["", None, "abc"])
    assert redact("abc def") == "abc def"
