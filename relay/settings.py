"""Every environment variable of docs/contract.md §3, read in one place.

Each process states what it needs with :meth:`Settings.require`; a missing or
invalid variable fails at start with one line that names it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay.core.policy import Policy, PolicyError, parse_policy
from relay.slack.response_urls import is_host_name, parse_hosts

_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# An approval open for less than a minute could not be decided; one over a week is forgotten.
MIN_APPROVAL_TTL_S, MAX_APPROVAL_TTL_S = 60, 7 * 86400


def parse_duration(value: str) -> int:
    """``30m`` -> 1800: seconds from a count and a unit (s, m, h, d), within the bounds."""
    found = _DURATION.match(value)
    if found is None:
        raise ValueError("must be a duration such as 30m, 2h or 900s")
    seconds = int(found.group(1)) * _UNIT_S[found.group(2)]
    if not MIN_APPROVAL_TTL_S <= seconds <= MAX_APPROVAL_TTL_S:
        raise ValueError("must be between 1 minute and 7 days")
    return seconds


Process = Literal[
    "web",
    "worker",
    "sim",
    "dev",
    "demo",
    "subscriptions",
    "deliveries",
    "operations",
    "dead-letters",
    "slack",
    "audit",
]

# What each process cannot start without. `dev`/`demo` need nothing: they embed
# Redis, Glider and the Slack secrets.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "web": ("redis_url",),
    "worker": ("redis_url", "glider_api_key"),
    "subscriptions": ("redis_url",),
    "deliveries": ("redis_url",),
    "operations": ("redis_url",),
    "dead-letters": ("redis_url",),
    "slack": ("slack_signing_secret",),
    "audit": ("redis_url",),
}


# The values .env.example ships with: a process started with one of them was never configured.
PLACEHOLDERS = frozenset(
    {
        "gldr_sk_replace_me",
        "replace_me",
        "xoxb-replace-me",
        "xapp-replace-me",
        "replace_me_with_a_long_random_string",
    }
)
# Long enough that guessing one is out of reach (docs/contract.md §3).
MIN_SECRET_CHARS = 16
_SECRET_FIELDS = (
    "glider_api_key",
    "slack_signing_secret",
    "slack_bot_token",
    "slack_app_token",
    "pagerduty_routing_key",
    "relay_admin_token",
)


class ConfigError(Exception):
    """Configuration is missing or invalid; ``str()`` is one line naming the variable."""


class Settings(BaseSettings):
    """Typed view of the environment. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_url: str | None = None
    glider_api_url: AnyHttpUrl = AnyHttpUrl("https://api.glider.fi")
    glider_api_key: SecretStr | None = None
    glider_max_rps: float = Field(default=10.0, gt=0, le=10_000)
    glider_timeout_s: float = Field(default=10.0, gt=0, le=120)
    slack_signing_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")
    bot_allowed_users: str | None = None
    oncall_slack_channel: str | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: AnyHttpUrl = AnyHttpUrl("https://events.pagerduty.com/v2/enqueue")
    relay_admin_token: SecretStr | None = None
    relay_allow_private_urls: bool = False
    relay_allow_evicting_redis: bool = False
    relay_job_cards: bool = True  # one Slack message per command, kept current (contract §9)
    slack_response_url_hosts: str = "hooks.slack.com"
    audit_retention_days: int = Field(default=400, ge=1, le=36_500)
    port: int = Field(default=3000, ge=0, le=65535)
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Set: spans are exported over OTLP/HTTP (relay/tracing.py); the SDK reads it, and the
    # other OTEL_* variables, itself.
    otel_exporter_otlp_endpoint: AnyHttpUrl | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    bot_confirm_rebalance: bool = True
    relay_policy_file: Path | None = None
    approvals_slack_channel: str | None = Field(default=None, pattern=r"^[CGD][A-Z0-9]{2,30}$")
    approval_ttl: str = "30m"

    @field_validator("approval_ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def approval_ttl_s(self) -> int:
        """``APPROVAL_TTL`` in seconds (``30m``, ``2h``, ``900s`` or plain seconds)."""
        return parse_duration(self.approval_ttl)

    def access_policy(self) -> Policy:
        """The policy of ``RELAY_POLICY_FILE``, else ``BOT_ALLOWED_USERS`` for everything.

        Raises :class:`ConfigError` naming the file's wrong line (or why it cannot be read).
        """
        if self.relay_policy_file is None:
            return Policy.allow_list(self.allowed_users)
        path = self.relay_policy_file
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"RELAY_POLICY_FILE cannot be read: {path}: {exc}") from None
        try:
            return parse_policy(source, name=str(path))
        except PolicyError as exc:
            raise ConfigError(f"RELAY_POLICY_FILE is invalid: {exc}") from None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("otel_exporter_otlp_endpoint", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if value is not None and not value.startswith(schemes):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+cluster://")
        return value

    @field_validator(*_SECRET_FIELDS)
    @classmethod
    def _not_a_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDERS:
            raise ValueError("is still the placeholder of .env.example; set a real secret")
        return value

    @field_validator("slack_signing_secret", "relay_admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters long")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_prefix(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must start with xapp-")
        return value

    @property
    def allowed_users(self) -> frozenset[str]:
        """Slack user ids allowed to act; ``{"*"}`` means everyone, empty means nobody."""
        if not self.bot_allowed_users:
            return frozenset()
        return frozenset(u.strip() for u in self.bot_allowed_users.split(",") if u.strip())

    @field_validator("slack_response_url_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        hosts = parse_hosts(value)
        if not hosts:
            raise ValueError("give at least one host (Slack's is hooks.slack.com)")
        if not all(is_host_name(host) for host in hosts):
            raise ValueError("host names only, comma-separated: no scheme, path or port")
        return value

    @property
    def response_url_hosts(self) -> frozenset[str]:
        """Hosts a command's response_url may name (lower case)."""
        return parse_hosts(self.slack_response_url_hosts)

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (for redaction), Redis password included.

        The password is listed as the URL spells it (percent-encoded) and as Redis
        receives it (decoded): either may end up in a message.
        """
        secrets = [getattr(self, name) for name in _SECRET_FIELDS]
        values = [s.get_secret_value() for s in secrets if s is not None]
        password = urlsplit(self.redis_url).password if self.redis_url else None
        if password:
            values += dict.fromkeys([password, unquote(password)])
        return values

    def require(self, process: Process, *, calls_glider: bool = True) -> Settings:
        """Raise :class:`ConfigError` naming the first variable ``process`` lacks.

        ``calls_glider=False``: a worker running only parts that never call Glider
        (``--only dispatcher,notifier``) needs no ``GLIDER_API_KEY``.
        """
        needed = list(_REQUIRED.get(process, ()))
        if process == "web" and not self.socket_mode:
            needed.append("slack_signing_secret")
        if not calls_glider:
            needed = [name for name in needed if name != "glider_api_key"]
        for name in needed:
            if getattr(self, name) is None:
                raise ConfigError(f"{name.upper()} is required for glider-relay {process}")
        return self


def load_settings(**overrides: object) -> Settings:
    """Read the environment (``overrides`` win); a bad value raises one-line ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None


def env_help(process: Process) -> str:
    """The variables ``process`` reads, with defaults and what it requires (for ``--help``).

    Derived from :class:`Settings`, so a new setting shows up by itself. Every process that
    loads settings validates all of them, so all are listed.
    """
    required = set(_REQUIRED.get(process, ()))
    if process == "web":
        required.add("slack_signing_secret")  # unless SLACK_APP_TOKEN (Socket Mode)
    lines = ["environment variables (see README, Configuration):"]
    for name, field in Settings.model_fields.items():
        if name in required:
            shown = "required"
        elif field.default is None:
            shown = "unset by default"
        else:
            shown = f"default {field.default}"
        lines.append(f"  {name.upper():<26} {shown}")
    return "\n".join(lines)


def policy_at_start(settings: Settings, process: str) -> Policy:
    """The access policy a process starts with; :class:`ConfigError` stops it on a bad file.

    With a policy file, ``BOT_ALLOWED_USERS`` is ignored: say so when both are set.
    """
    policy = settings.access_policy()
    if policy.from_file and settings.bot_allowed_users:
        logging.getLogger(__name__).warning(
            "BOT_ALLOWED_USERS is ignored: RELAY_POLICY_FILE decides who may run commands",
            extra={"glider_relay_process": process, "policy_file": str(settings.relay_policy_file)},
        )
    return policy
