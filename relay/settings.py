"""Every environment variable of SPEC section 3, read in one place.

Each process states what it needs with :meth:`Settings.require`; a missing or
invalid variable fails at start with one line that names it.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Process = Literal["web", "worker", "sim", "dev", "demo", "subscriptions", "deliveries"]

# What each process cannot start without. `dev`/`demo` need nothing: they embed
# Redis, Glider and the Slack secrets.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "web": ("redis_url",),
    "worker": ("redis_url", "glider_api_key"),
    "subscriptions": ("redis_url",),
    "deliveries": ("redis_url",),
}


class ConfigError(Exception):
    """Configuration is missing or invalid; ``str()`` is one line naming the variable."""


class Settings(BaseSettings):
    """Typed view of the environment. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_url: str | None = None
    glider_api_url: AnyHttpUrl = AnyHttpUrl("https://api.glider.fi")
    glider_api_key: SecretStr | None = None
    glider_max_rps: float = Field(default=10.0, gt=0, le=10_000)
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
    port: int = Field(default=3000, ge=0, le=65535)
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if value is not None and not value.startswith(schemes):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+cluster://")
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

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (for the log scrubber), Redis password included."""
        secrets = (
            self.glider_api_key,
            self.slack_signing_secret,
            self.slack_bot_token,
            self.slack_app_token,
            self.relay_admin_token,
            self.pagerduty_routing_key,
        )
        values = [s.get_secret_value() for s in secrets if s is not None]
        password = urlsplit(self.redis_url).password if self.redis_url else None
        return values + ([password] if password else [])

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
