"""What the simulator serves and how it misbehaves: portfolios, API keys, timings, fault rates.

A seed file is this model as JSON (``SimConfig.load``); ``SimConfig.default()`` is
what ``glider-relay sim``, ``dev`` and the tests start from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["portfolios:read", "portfolios:write"]
ScheduleStatus = Literal["active", "paused"]
Frequency = Literal["hourly", "daily", "weekly", "monthly"]
Outcome = Literal["completed", "failed", "cancelled"]
Detour = Literal["retrying", "awaiting_user"]

READ: Scope = "portfolios:read"
WRITE: Scope = "portfolios:write"

# Keys of the default configuration. They only open the simulator, so they are not secrets.
ADMIN_KEY = "gldr_sk_sim_admin"
READONLY_KEY = "gldr_sk_sim_readonly"
OTHER_TENANT_KEY = "gldr_sk_sim_globex"

# Portfolios of the default configuration, one per id shape Glider's docs show.
PF_MAIN = "pf_01JWZG3KH9P4N5QXJVNK7M3WTV"
PF_ULID = "01JWZEE2MF30KVRMRX53N88VA4"
PF_SHORT = "a1b2c3d4"
PF_NO_SCHEDULE = "pf_01JX2K7Q4N8T5M3WBZC6D9EHFR"
PF_OTHER_TENANT = "pf_01JX5R8M2B7YQ4WZ3VTK6N9PCD"

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class SimPortfolio(BaseModel):
    """One portfolio; ``schedule=None`` means it has no rebalance schedule (start/stop → 400)."""

    model_config = _FROZEN

    id: str = Field(min_length=1, max_length=64)
    tenant: str
    name: str | None = None
    schedule: ScheduleStatus | None = "active"
    frequency: Frequency = "daily"
    owner_account_id: str = "eip155:0:0xabcdef0000000000000000000000000000000001"
    smart_accounts: tuple[str, ...] = ("eip155:8453:0xe3a2d1f49aee887e42655b56371d4d76bbf58058",)
    strategy_id: str = "01JWZEE2MF30KVRMRX53N88VA4"
    strategy_name: str = "Conservative Yield"
    strategy_description: str = "Multi-chain balanced allocation strategy"
    strategy_version: int = 4
    # Force how this portfolio's rebalances end, instead of drawing from the rates.
    outcome: Outcome | None = None
    detour: Detour | None = None
    error_message: str | None = None


class SimApiKey(BaseModel):
    """An API key, the tenant it belongs to and the scopes it carries."""

    model_config = _FROZEN

    key: str = Field(min_length=1)
    tenant: str
    scopes: frozenset[Scope] = frozenset({READ, WRITE})

    @property
    def key_id(self) -> str:
        """A stable public id (``key_...``), as ``/v2/whoami`` reports it."""
        return "key_" + hashlib.sha256(self.key.encode()).hexdigest()[:20]


class SimConfig(BaseModel):
    """Everything the simulator needs; rates are probabilities in [0, 1]."""

    model_config = _FROZEN

    portfolios: tuple[SimPortfolio, ...] = ()
    api_keys: tuple[SimApiKey, ...] = ()
    op_duration_s: float = Field(default=3.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    cancel_rate: float = Field(default=0.0, ge=0, le=1)
    awaiting_user_rate: float = Field(default=0.0, ge=0, le=1)
    retrying_rate: float = Field(default=0.0, ge=0, le=1)
    cooldown_s: float = Field(default=10.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    latency_ms: int = Field(default=0, ge=0)
    ip_rate_limit_per_s: int | None = Field(default=None, gt=0)
    seed: int = 0
    legacy_fields: bool = False
    strict_encoding: bool = False

    @classmethod
    def load(cls, path: str | Path) -> SimConfig:
        """Read a JSON seed file shaped like this model."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def default(cls) -> SimConfig:
        """Two tenants, four portfolios of ``acme`` (one unscheduled) and one of ``globex``."""
        return cls(
            portfolios=(
                SimPortfolio(id=PF_MAIN, tenant="acme", name="Alice Conservative Yield"),
                SimPortfolio(id=PF_ULID, tenant="acme", name="Treasury", schedule="paused"),
                SimPortfolio(id=PF_SHORT, tenant="acme", frequency="hourly"),
                SimPortfolio(id=PF_NO_SCHEDULE, tenant="acme", name="Manual", schedule=None),
                SimPortfolio(id=PF_OTHER_TENANT, tenant="globex", name="Globex Growth"),
            ),
            api_keys=(
                SimApiKey(key=ADMIN_KEY, tenant="acme"),
                SimApiKey(key=READONLY_KEY, tenant="acme", scopes=frozenset({READ})),
                SimApiKey(key=OTHER_TENANT_KEY, tenant="globex"),
            ),
        )

    def with_overrides(self, **overrides: object) -> SimConfig:
        """A validated copy with some fields replaced."""
        return type(self).model_validate({**dict(self), **overrides})

    def portfolio(self, portfolio_id: str) -> SimPortfolio | None:
        return next((p for p in self.portfolios if p.id == portfolio_id), None)

    def api_key(self, key: str) -> SimApiKey | None:
        return next((k for k in self.api_keys if k.key == key), None)
