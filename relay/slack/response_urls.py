"""Which ``response_url`` the relay may POST to: the one check every poster makes.

A ``response_url`` comes inside a signed Slack payload, but the relay still never
POSTs to a host it was not told to trust (``SLACK_RESPONSE_URL_HOSTS``): a leaked
signing secret, or a proxy that rewrites bodies, must not turn the worker into a
client of any URL. Pure.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

DEFAULT_HOSTS = frozenset({"hooks.slack.com"})
# Plain http only to these (the local Slack stand-in of tests and `dev`); Slack is https.
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class DisallowedResponseUrl(ValueError):
    """A response_url whose host is not in SLACK_RESPONSE_URL_HOSTS (or not https)."""


def parse_hosts(raw: str) -> frozenset[str]:
    """``SLACK_RESPONSE_URL_HOSTS``: comma-separated host names, compared without case."""
    return frozenset(host.strip().lower() for host in raw.split(",") if host.strip())


_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def is_host_name(host: str) -> bool:
    """A DNS name or an IP literal (as ``urlsplit`` gives it: IPv6 without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _NAME.fullmatch(host) is not None
    return True


def is_allowed(url: str, hosts: frozenset[str]) -> bool:
    """True when ``url`` is https (http on loopback) to one of ``hosts``, with no credentials."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.username is not None or host not in hosts:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)


def host_of(url: str) -> str | None:
    """The URL's host for a log line (cut to 100 characters), or None when it has none."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host[:100] if host else None


def check(url: str, hosts: frozenset[str]) -> None:
    """Raise :class:`DisallowedResponseUrl` unless :func:`is_allowed` (naming the host)."""
    if not is_allowed(url, hosts):
        raise DisallowedResponseUrl(
            f"response_url host {host_of(url)!r} is not in SLACK_RESPONSE_URL_HOSTS"
        )
