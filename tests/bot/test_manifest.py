"""The Slack app manifest declares exactly the commands, scopes and URL the bot serves."""

from __future__ import annotations

import re

from bot.parse import COMMAND_NAMES
from tests import ROOT

MANIFEST = (ROOT / "slack-manifest.yml").read_text()


def test_manifest_declares_every_command_the_bot_listens_to() -> None:
    """The manifest's slash commands are the bot's, no more and no fewer."""
    declared = re.findall(r"^\s*- command: (\S+)$", MANIFEST, flags=re.MULTILINE)
    assert sorted(declared) == sorted(COMMAND_NAMES)


def test_every_url_is_the_slack_events_endpoint() -> None:
    """Commands and interactivity all go to POST /slack/events."""
    urls = re.findall(r"(?:url|request_url): (\S+)", MANIFEST)
    assert len(urls) == len(COMMAND_NAMES) + 1
    assert set(urls) == {"https://YOUR-HOST/slack/events"}


def test_scopes_and_mode() -> None:
    """The bot scopes are commands, chat:write and im:write; HTTP mode by default."""
    scopes = re.findall(r"^\s*- ([a-z]+(?::[a-z]+)?)(?:\s+#.*)?$", MANIFEST, flags=re.MULTILINE)
    assert scopes == ["commands", "chat:write", "im:write"]
    assert re.search(r"^\s*socket_mode_enabled: false", MANIFEST, flags=re.MULTILINE)


def test_status_and_help_are_in_the_usage_hint() -> None:
    """/rebalance's usage hint shows the status and help forms."""
    assert 'usage_hint: "<portfolioId> | status <portfolioId> | help"' in MANIFEST
