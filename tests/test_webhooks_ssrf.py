"""SSRF guard: address classification, URL rules, and resolution checked at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from relay.webhooks.ssrf import (
    BlockedAddress,
    GuardedResolver,
    UnsafeURL,
    blocked_reason,
    check_destination,
    check_url,
)
from tests.fixtures.webhooks import StaticResolver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
    ],
)
def test_non_public_addresses_are_blocked(address: str, reason: str) -> None:
    """Loopback, private, link-local, CGNAT, multicast, reserved, ULA, mapped: refused."""
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    """Globally routable addresses (v4, v6 and v4-mapped) are allowed."""
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "must start with https://"),
        ("ftp://hooks.example.com/x", "must start with https://"),
        ("https:///path", "must have a host"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]:8443/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::ffff:192.168.0.1]/", "private"),
        ("not a url", "must start with https://"),
    ],
)
def test_unsafe_urls_are_refused(url: str, message: str) -> None:
    """Only https URLs with a host and no private literal address pass by default."""
    with pytest.raises(UnsafeURL, match=message):
        check_url(url, allow_private=False)


def test_private_urls_allowed_when_configured() -> None:
    """With RELAY_ALLOW_PRIVATE_URLS, http and loopback literals pass (tests, local dev)."""
    target = check_url("http://127.0.0.1:8080/hook", allow_private=True)
    assert target.host == "127.0.0.1"
    with pytest.raises(UnsafeURL, match="https:// or http://"):
        check_url("ftp://127.0.0.1/", allow_private=True)


async def test_name_resolving_to_private_address_is_refused_at_save() -> None:
    """A public-looking name that resolves to 10.0.0.5 is refused when saved."""
    resolver = GuardedResolver(
        StaticResolver({"hooks.evil.test": ["10.0.0.5"]}), allow_private=False
    )
    with pytest.raises(UnsafeURL, match="private"):
        await check_destination("https://hooks.evil.test/x", resolver, allow_private=False)


async def test_any_private_address_among_many_is_refused() -> None:
    """One bad address among good ones (v4 and v6) is enough to refuse the name."""
    table = {"mixed.test": ["93.184.216.34", "fd00::7"]}
    resolver = GuardedResolver(StaticResolver(table), allow_private=False)
    with pytest.raises(BlockedAddress, match="unique-local"):
        await resolver.resolve("mixed.test", 443, socket.AF_UNSPEC)


async def test_public_name_passes_and_returns_checked_addresses() -> None:
    """A name with only public addresses resolves to exactly those (what aiohttp connects to)."""
    table = {"hooks.partner.test": ["93.184.216.34", "2606:4700::1111"]}
    resolver = GuardedResolver(StaticResolver(table), allow_private=False)
    results = await resolver.resolve("hooks.partner.test", 443)
    assert [r["host"] for r in results] == table["hooks.partner.test"]
    await check_destination("https://hooks.partner.test/x", resolver, allow_private=False)


async def test_unresolvable_name_is_refused_at_save() -> None:
    """A host that does not resolve cannot be saved."""
    resolver = GuardedResolver(StaticResolver({}), allow_private=False)
    with pytest.raises(UnsafeURL, match="does not resolve"):
        await check_destination("https://nowhere.test/", resolver, allow_private=False)
