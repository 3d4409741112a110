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
    assert len(urls) == len(COMMAND_NAMES) + 2  # interactivity and the event subscription
    assert set(urls) == {"https://YOUR-HOST/slack/events"}


def test_scopes_and_mode() -> None:
    """The bot scopes are commands, chat:write, im:write, usergroups:read; HTTP by default."""
    scopes = re.findall(r"^\s*- ([a-z]+:[a-z]+|commands)(?:\s+#.*)?$", MANIFEST, flags=re.MULTILINE)
    assert scopes == ["commands", "chat:write", "im:write", "usergroups:read"]
    assert re.search(r"^\s*interactivity:.*\n\s*is_enabled: true", MANIFEST, flags=re.MULTILINE)
    assert re.search(r"^\s*socket_mode_enabled: false", MANIFEST, flags=re.MULTILINE)


def test_status_and_help_are_in_the_usage_hint() -> None:
    """/rebalance's usage hint shows the status and help forms."""
    assert 'usage_hint: "<portfolioId> | status <portfolioId> | list [page] | help"' in MANIFEST


def test_home_tab_and_its_event() -> None:
    """The Home tab is on, and app_home_opened is the one bot event, to /slack/events."""
    assert re.search(r"^\s*app_home:.*\n\s*home_tab_enabled: true", MANIFEST, flags=re.MULTILINE)
    events = re.search(
        r"^\s*event_subscriptions:.*\n\s*request_url: (\S+)\n\s*bot_events:\n((?:\s*- \S+\n)+)",
        MANIFEST,
        flags=re.MULTILINE,
    )
    assert events is not None
    assert events.group(1) == "https://YOUR-HOST/slack/events"
    assert re.findall(r"- (\S+)", events.group(2)) == ["app_home_opened"]
