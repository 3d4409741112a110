"""The Glider v2 API client: ``GliderClient``, its typed answers and its exceptions."""

from relay.glider.client import GliderClient, RateLimiter
from relay.glider.errors import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderError,
    GliderTimeout,
    GliderUnavailable,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)
from relay.glider.models import (
    Operation,
    OperationState,
    PortfolioDetail,
    RebalanceAccepted,
    Schedule,
    ScheduleStatus,
    SmartAccount,
    Whoami,
)

__all__ = [
    "BadRequest",
    "CooldownActive",
    "Forbidden",
    "GliderClient",
    "GliderError",
    "GliderTimeout",
    "GliderUnavailable",
    "MalformedResponse",
    "NotFound",
    "Operation",
    "OperationState",
    "PortfolioDetail",
    "RateLimited",
    "RateLimiter",
    "RebalanceAccepted",
    "Schedule",
    "ScheduleStatus",
    "ServerError",
    "SmartAccount",
    "Unauthorized",
    "Whoami",
]
