"""JSON log lines and secret redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from relay.core.redact import unregister_secrets
from relay.logs import JsonFormatter, configure_logging, redact, register_secrets
from relay.settings import load_settings


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


@pytest.fixture
def forget() -> Iterator[list[str]]:
    """Secrets a test registers, forgotten afterwards so they garble no other test's lines."""
    registered: list[str] = []
    yield registered
    unregister_secrets(registered)


def _line(message: str, **extra: object) -> str:
    record = logging.makeLogRecord({"name": "relay.t", "levelname": "INFO", "msg": message})
    record.__dict__.update(extra)
    return JsonFormatter().format(record)


def test_short_secrets_are_redacted_too(forget: list[str]) -> None:
    """A secret shorter than 6 characters (a tiny Redis password) is scrubbed all the same."""
    forget += ["Zq9", "p4ss"]
    register_secrets(["", None, *forget])
    line = _line("auth with Zq9 failed", password="p4ss")
    assert "Zq9" not in line
    assert "p4ss" not in line
    assert json.loads(line)["message"] == "auth with [REDACTED] failed"


@pytest.mark.parametrize("secret", ['quo"te-secret-value', "back\\slash-secret-value", 'both\\"x'])
def test_secrets_with_json_special_characters_are_redacted(forget: list[str], secret: str) -> None:
    """A secret holding ``"`` or ``\\`` is escaped inside the JSON line; it is found there too."""
    forget.append(secret)
    register_secrets([secret])
    line = _line(f"echoed {secret}", extra_field={"nested": secret})
    payload = json.loads(line)
    assert secret not in payload["message"]
    assert secret not in json.dumps(payload["extra_field"])
    assert secret not in line
    assert json.dumps(secret)[1:-1] not in line
    assert payload["message"] == "echoed [REDACTED]"


def test_percent_encoded_redis_password_is_redacted_in_both_spellings(forget: list[str]) -> None:
    """``redis://:p%40ss...@`` : the URL's spelling and the decoded password are both scrubbed."""
    settings = load_settings(redis_url="redis://:p%40ss%2Fw0rd%3A@127.0.0.1:6379/0")
    forget += settings.secret_values()
    register_secrets(settings.secret_values())
    line = _line("redis://:p%40ss%2Fw0rd%3A@127.0.0.1 said WRONGPASS for p@ss/w0rd:")
    assert "p%40ss%2Fw0rd%3A" not in line
    assert "p@ss/w0rd:" not in line
    assert json.loads(line)["message"].count("[REDACTED]") == 2


def test_a_secret_inside_another_goes_whole(forget: list[str]) -> None:
    """Overlapping secrets: the longer is replaced whole, and no piece of either remains."""
    forget += ["secret-outer-value-123", "outer"]
    register_secrets(forget)
    assert redact("x secret-outer-value-123 y outer") == "x [REDACTED] y [REDACTED]"
