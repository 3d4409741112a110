"""The one response_url check: only SLACK_RESPONSE_URL_HOSTS, https (http on loopback)."""

from __future__ import annotations

import pytest

from relay.settings import ConfigError, load_settings
from relay.slack.response_urls import DisallowedResponseUrl, check, is_allowed, parse_hosts

HOSTS = parse_hosts("hooks.slack.com, 127.0.0.1")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/commands/T1/1/abc",
        "https://HOOKS.SLACK.COM:443/commands/x",
        "http://127.0.0.1:8080/response/1",
    ],
)
def test_listed_hosts_are_allowed(url: str) -> None:
    """Slack's host over https, and the loopback stand-in over http, pass."""
    assert is_allowed(url, HOSTS)
    check(url, HOSTS)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/steal",
        "https://hooks.slack.com.evil.example/",
        "https://evil.example/?https://hooks.slack.com/",
        "http://hooks.slack.com/commands/x",  # Slack is https; plain http only on loopback
        "https://user@hooks.slack.com/",
        "https://hooks.slack.com:bad/",
        "http://localhost:8080/",
        "ftp://hooks.slack.com/",
        "hooks.slack.com/commands",
        "",
    ],
)
def test_other_hosts_and_forms_are_refused(url: str) -> None:
    """Any other host, scheme or shape is refused, and check() names the host."""
    assert not is_allowed(url, HOSTS)
    with pytest.raises(DisallowedResponseUrl, match="SLACK_RESPONSE_URL_HOSTS"):
        check(url, HOSTS)


def test_setting_defaults_to_slacks_host_and_splits_on_commas() -> None:
    """SLACK_RESPONSE_URL_HOSTS: hooks.slack.com unless set; a list, without case."""
    assert load_settings().response_url_hosts == {"hooks.slack.com"}
    assert load_settings(slack_response_url_hosts=" A.test,b.test ").response_url_hosts == {
        "a.test",
        "b.test",
    }


@pytest.mark.parametrize("raw", ["", " , ", "https://hooks.slack.com", "host:443", "a/b"])
def test_invalid_setting_fails_at_start_naming_the_variable(raw: str) -> None:
    """Empty, or a URL/port instead of host names: a one-line error naming the variable."""
    with pytest.raises(ConfigError, match="SLACK_RESPONSE_URL_HOSTS"):
        load_settings(slack_response_url_hosts=raw)
