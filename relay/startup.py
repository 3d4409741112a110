"""Start-up checks of ``web`` and ``worker``: say at once what the configuration leaves off.

An unset optional setting that silently disables something gets one WARNING at start
(rather than being discovered when the first alert never arrives), and the worker asks
Glider which scopes its key has.
"""

from __future__ import annotations

import logging
from typing import Literal

from relay.glider import GliderClient, GliderError
from relay.settings import Settings

log = logging.getLogger(__name__)

REQUIRED_SCOPE = "portfolios:write"

# Per process: each optional setting whose absence turns something off, and what.
_DISABLES: dict[str, dict[str, str]] = {
    "web": {
        "slack_bot_token": "late /rebalance status answers cannot fall back to a DM",
        "relay_admin_token": "the admin API (/v1/...) answers 503 to everyone",
        "bot_allowed_users": "nobody may run commands: every Slack command is refused",
    },
    "worker": {
        "slack_bot_token": "no DM fallback for replies and no on-call Slack alerts",
        "oncall_slack_channel": "a failed rebalance alerts no Slack channel",
    },
}


def unset_warnings(settings: Settings, process: Literal["web", "worker"]) -> list[str]:
    """The warning of each optional setting ``process`` lacks (pure: for logging and tests)."""
    return [
        f"{name.upper()} is unset: {effect}"
        for name, effect in _DISABLES[process].items()
        if getattr(settings, name) is None and not _decided_elsewhere(settings, name)
    ]


def _decided_elsewhere(settings: Settings, name: str) -> bool:
    # With a policy file, BOT_ALLOWED_USERS is ignored: its absence turns nothing off.
    return name == "bot_allowed_users" and settings.relay_policy_file is not None


def warn_unset(settings: Settings, process: Literal["web", "worker"]) -> None:
    """Log one WARNING per optional setting that is unset and disables something."""
    for message in unset_warnings(settings, process):
        log.warning(message, extra={"setting": message.split(" ", 1)[0]})


async def check_glider_key(glider: GliderClient) -> None:
    """Log the Glider key's scopes (``GET /v2/whoami``); WARN when it cannot act.

    Never raises for Glider's sake: the worker runs on whatever the answer, or the lack of one.
    """
    try:
        who = await glider.whoami()
    except GliderError as exc:
        if exc.status == 403:
            log.warning("Glider key: whoami refused (a legacy static key?); scopes unknown")
        else:
            log.warning("Glider key: could not read its scopes", extra={"error": str(exc)})
        return
    log.info(
        "Glider key checked",
        extra={"tenant": who.tenant_name, "api_key_id": who.api_key_id, "scopes": who.scopes},
    )
    if REQUIRED_SCOPE not in who.scopes:
        log.warning(
            "Glider key lacks %s: every rebalance, pause and resume will be refused",
            REQUIRED_SCOPE,
            extra={"scopes": who.scopes},
        )
