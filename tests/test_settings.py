"""Settings: every variable read from the environment, failures that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.settings import MIN_SECRET_CHARS, ConfigError, Settings, load_settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
SECRET_VARIABLES = (
    "GLIDER_API_KEY",
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "PAGERDUTY_ROUTING_KEY",
    "RELAY_ADMIN_TOKEN",
)

VARIABLES = (
    "REDIS_URL",
    "GLIDER_API_URL",
    "GLIDER_API_KEY",
    "GLIDER_MAX_RPS",
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "BOT_ALLOWED_USERS",
    "ONCALL_SLACK_CHANNEL",
    "PAGERDUTY_ROUTING_KEY",
    "PAGERDUTY_EVENTS_URL",
    "RELAY_ADMIN_TOKEN",
    "RELAY_ALLOW_PRIVATE_URLS",
    "PORT",
    "WORKER_METRICS_PORT",
    "LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Each test starts from an environment with none of the variables set."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_match_the_spec() -> None:
    """Unset variables take the defaults of docs/contract.md §3."""
    settings = load_settings()
    assert str(settings.glider_api_url) == "https://api.glider.fi/"
    assert settings.glider_max_rps == 10
    assert str(settings.slack_api_url) == "https://slack.com/api/"
    assert str(settings.pagerduty_events_url) == "https://events.pagerduty.com/v2/enqueue"
    assert settings.port == 3000
    assert settings.log_level == "INFO"
    assert settings.relay_allow_private_urls is False
    assert settings.allowed_users == frozenset()
    assert not settings.socket_mode


def test_web_without_redis_url_names_it(clean_env: pytest.MonkeyPatch) -> None:
    """web refuses to start without REDIS_URL, in one line that says so."""
    clean_env.setenv("SLACK_SIGNING_SECRET", "signing-secret-value")
    with pytest.raises(ConfigError) as raised:
        load_settings().require("web")
    assert str(raised.value) == "REDIS_URL is required for glider-relay web"


def test_worker_needs_redis_and_glider_key(clean_env: pytest.MonkeyPatch) -> None:
    """worker names REDIS_URL first, then GLIDER_API_KEY."""
    with pytest.raises(ConfigError, match=r"^REDIS_URL is required for glider-relay worker$"):
        load_settings().require("worker")
    clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match=r"^GLIDER_API_KEY is required for glider-relay worker$"):
        load_settings().require("worker")
    clean_env.setenv("GLIDER_API_KEY", "gldr_sk_test")
    assert load_settings().require("worker").glider_api_key is not None


def test_web_http_mode_needs_the_signing_secret(clean_env: pytest.MonkeyPatch) -> None:
    """HTTP mode needs SLACK_SIGNING_SECRET; Socket Mode (SLACK_APP_TOKEN) does not."""
    clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        load_settings().require("web")
    clean_env.setenv("SLACK_APP_TOKEN", "xapp-1-abc")
    assert load_settings().require("web").socket_mode


@pytest.mark.parametrize("process", ["sim", "dev", "demo"])
def test_embedded_processes_need_nothing(process: str) -> None:
    """sim, dev and demo start with an empty environment."""
    load_settings().require(process)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("PORT", "not-a-port"),
        ("PORT", "70000"),
        ("GLIDER_MAX_RPS", "0"),
        ("GLIDER_API_URL", "not a url"),
        ("SLACK_APP_TOKEN", "xoxb-wrong-kind"),
        ("LOG_LEVEL", "LOUD"),
        ("RELAY_ALLOW_PRIVATE_URLS", "perhaps"),
    ],
)
def test_bad_values_name_the_variable(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    """An invalid value fails with a one-line message that starts with the variable."""
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{name} is invalid")
    assert "\n" not in message


def test_a_bad_secret_is_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    """The error for a malformed token names the variable but not the token."""
    clean_env.setenv("SLACK_APP_TOKEN", "xoxb-pasted-into-the-wrong-variable")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "SLACK_APP_TOKEN" in str(raised.value)
    assert "xoxb-pasted" not in str(raised.value)


def test_accepted_redis_schemes(clean_env: pytest.MonkeyPatch) -> None:
    """redis, rediss, unix and cluster URLs are all accepted."""
    for url in ("redis://h:1/0", "rediss://h:1", "unix:///tmp/r.sock", "redis+cluster://h:1"):
        clean_env.setenv("REDIS_URL", url)
        assert load_settings().redis_url == url


def test_secrets_never_print(clean_env: pytest.MonkeyPatch) -> None:
    """repr and str of the settings hide every secret value."""
    secrets = {
        "GLIDER_API_KEY": "gldr_sk_super_secret_1",
        "SLACK_SIGNING_SECRET": "signing_secret_2",
        "SLACK_BOT_TOKEN": "xoxb-bot-token-3",
        "SLACK_APP_TOKEN": "xapp-app-token-4",
        "PAGERDUTY_ROUTING_KEY": "pd_routing_key_5",
        "RELAY_ADMIN_TOKEN": "admin_token_6_long_enough",
    }
    for name, value in secrets.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    shown = repr(settings) + str(settings) + repr(settings.model_dump())
    for value in secrets.values():
        assert value not in shown
    assert settings.glider_api_key is not None
    assert settings.glider_api_key.get_secret_value() == secrets["GLIDER_API_KEY"]


def test_lowercase_log_level_and_allowed_users(clean_env: pytest.MonkeyPatch) -> None:
    """LOG_LEVEL is case-insensitive; BOT_ALLOWED_USERS is a trimmed comma list."""
    clean_env.setenv("LOG_LEVEL", "debug")
    clean_env.setenv("BOT_ALLOWED_USERS", " U1, U2 ,,U3")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.allowed_users == frozenset({"U1", "U2", "U3"})
    clean_env.setenv("BOT_ALLOWED_USERS", "*")
    assert load_settings().allowed_users == frozenset({"*"})


def test_overrides_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    """Keyword overrides replace environment values."""
    clean_env.setenv("PORT", "4000")
    assert load_settings(port=5000).port == 5000
    assert load_settings().port == 4000


def test_settings_are_frozen() -> None:
    """Settings cannot change after start."""
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
    assert isinstance(settings, Settings)


def test_secret_values_lists_every_secret_and_the_redis_password() -> None:
    """The log scrubber gets every secret the process holds, the Redis password included."""
    settings = load_settings(
        redis_url="redis://:hunter2-redis-pass@127.0.0.1:6379/0",
        glider_api_key="gldr_sk_live_0123456789",
        slack_bot_token="xoxb-secret-token",
        relay_admin_token="admin-token-abcdef",
    )
    assert set(settings.secret_values()) == {
        "hunter2-redis-pass",
        "gldr_sk_live_0123456789",
        "xoxb-secret-token",
        "admin-token-abcdef",
    }


def test_worker_without_glider_parts_needs_no_glider_key(clean_env: pytest.MonkeyPatch) -> None:
    """A worker running only the dispatcher or notifier starts without GLIDER_API_KEY."""
    clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = load_settings()
    assert settings.require("worker", calls_glider=False) is settings
    with pytest.raises(ConfigError, match="GLIDER_API_KEY"):
        settings.require("worker")


def _example_secrets() -> dict[str, str]:
    """The secret variables of .env.example with their placeholder values (commented or not)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.lstrip("# ").partition("=")
        if name in SECRET_VARIABLES:
            found[name] = value.strip()
    return found


def test_env_example_names_every_secret() -> None:
    """.env.example carries a placeholder for every secret, so the next test covers them all."""
    assert set(_example_secrets()) == set(SECRET_VARIABLES)


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_a_placeholder_secret_is_refused(clean_env: pytest.MonkeyPatch, name: str) -> None:
    """A secret left at its .env.example value stops the process, naming the variable."""
    clean_env.setenv(name, _example_secrets()[name])
    with pytest.raises(ConfigError, match=f"^{name} is invalid: .*placeholder"):
        load_settings()


@pytest.mark.parametrize("name", ["RELAY_ADMIN_TOKEN", "SLACK_SIGNING_SECRET"])
def test_short_admin_token_and_signing_secret_are_refused(
    clean_env: pytest.MonkeyPatch, name: str
) -> None:
    """RELAY_ADMIN_TOKEN and SLACK_SIGNING_SECRET under 16 characters are invalid; 16 is fine."""
    clean_env.setenv(name, "x" * (MIN_SECRET_CHARS - 1))
    with pytest.raises(ConfigError, match=f"^{name} is invalid: .*at least 16 characters"):
        load_settings()
    clean_env.setenv(name, "x" * MIN_SECRET_CHARS)
    assert load_settings().secret_values() == ["x" * MIN_SECRET_CHARS]


def test_secret_values_hold_both_spellings_of_a_percent_encoded_password() -> None:
    """The Redis password is listed as the URL spells it and as Redis receives it."""
    settings = load_settings(redis_url="redis://u:p%40ss%25@127.0.0.1:6379/0")
    assert settings.secret_values() == ["p%40ss%25", "p@ss%"]


def test_audit_retention_defaults_to_400_days_and_refuses_nonsense() -> None:
    """AUDIT_RETENTION_DAYS: 400 unless set; 0, negative or not a number fails naming it."""
    assert load_settings().audit_retention_days == 400
    assert load_settings(audit_retention_days="30").audit_retention_days == 30
    for bad in ("0", "-1", "a year"):
        with pytest.raises(ConfigError, match="AUDIT_RETENTION_DAYS"):
            load_settings(audit_retention_days=bad)
