"""SSRF guard: address classification, URL rules, and resolution checked at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.webhooks.ssrf import (
    BlockedAddress,
    GuardedResolver,
    UnsafeURL,
    blocked_reason,
    check_addresses,
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
        ("::127.0.0.1", "loopback"),
        ("::8.8.8.8", "IPv4-compatible"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("::ffff:0:8.8.8.8", "IPv4-translated"),
        ("::ffff:0:192.168.1.1", "private"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("2001:0:808:808::80ff:fffe", "loopback"),  # Teredo client 127.0.0.1 (inverted)
        ("2001:0:a00:1::f7f7:f7f7", "private"),  # Teredo server 10.0.0.1
    ],
)
def test_non_public_addresses_are_blocked(address: str, reason: str) -> None:
    """Loopback, private, link-local, CGNAT, multicast, reserved, ULA, mapped: refused."""
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700::1111",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
        "2001:0:808:808::f7f7:f7f7",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    """Globally routable addresses, and NAT64/6to4/Teredo forms of public IPv4, are allowed."""
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
        ("https://[::127.0.0.1]/", "loopback"),
        ("https://[64:ff9b::a9fe:a9fe]/latest/meta-data", "link-local"),
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


_NON_PUBLIC_V4 = [
    ipaddress.IPv4Network(net)
    for net in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
]
_PUBLIC_V4 = [ipaddress.IPv4Network(net) for net in ("8.0.0.0/8", "93.184.0.0/16", "1.1.1.0/24")]


def _in(networks: list[ipaddress.IPv4Network]) -> st.SearchStrategy[ipaddress.IPv4Address]:
    return st.sampled_from(networks).flatmap(
        lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i])
    )


def _forms(v4: ipaddress.IPv4Address, noise: int) -> dict[str, ipaddress.IPv6Address]:
    """Every IPv6 spelling that carries ``v4``; ``noise`` fills the bits the form leaves free."""
    n, low16 = int(v4), noise & 0xFFFF
    teredo_server = int(ipaddress.IPv4Address("65.54.227.120"))
    public_client = int(ipaddress.IPv4Address("8.8.8.8"))
    return {
        "compatible": ipaddress.IPv6Address(n),
        "mapped": ipaddress.IPv6Address((0xFFFF << 32) | n),
        "translated": ipaddress.IPv6Address((0xFFFF << 48) | n),
        "nat64": ipaddress.IPv6Address((0x64FF9B << 96) | n),
        "local-nat64": ipaddress.IPv6Address((0x64FF9B0001 << 80) | (noise << 32) | n),
        "6to4": ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | noise),
        "teredo-client": ipaddress.IPv6Address(
            (0x20010000 << 96) | (teredo_server << 64) | (low16 << 32) | (n ^ 0xFFFFFFFF)
        ),
        "teredo-server": ipaddress.IPv6Address(
            (0x20010000 << 96) | (n << 64) | (low16 << 32) | (public_client ^ 0xFFFFFFFF)
        ),
    }


@given(v4=_in(_NON_PUBLIC_V4), noise=st.integers(0, 2**32 - 1))
def test_every_v6_form_of_a_private_ipv4_is_refused(v4: ipaddress.IPv4Address, noise: int) -> None:
    """Loopback, private or link-local IPv4 embedded in any IPv6 form is refused."""
    for form, address in _forms(v4, noise).items():
        assert blocked_reason(address) is not None, (form, str(address))
        with pytest.raises(UnsafeURL):
            check_url(f"https://[{address}]/", allow_private=False)
        with pytest.raises(BlockedAddress):
            check_addresses("hooks.partner.test", [str(address)])


@given(v4=_in(_PUBLIC_V4), noise=st.integers(0, 2**32 - 1))
def test_public_ipv4_passes_only_through_translators(v4: ipaddress.IPv4Address, noise: int) -> None:
    """A public IPv4 passes as NAT64, 6to4 or Teredo; compatible, mapped, translated and
    local-use NAT64 forms are refused whatever they carry."""
    forms = _forms(v4, noise)
    for form in ("nat64", "6to4", "teredo-client", "teredo-server"):
        assert blocked_reason(forms[form]) is None, (form, str(forms[form]))
    for form in ("compatible", "mapped", "translated", "local-nat64"):
        assert blocked_reason(forms[form]) is not None, (form, str(forms[form]))


@pytest.mark.parametrize(
    ("host", "public_as", "private_as"),
    [
        ("16843009", "write it as 1.1.1.1", "write it as 1.1.1.1"),
        ("01.01.01.01", "write it as 1.1.1.1", "write it as 1.1.1.1"),
        ("1.1.257", "write it as 1.1.1.1", "write it as 1.1.1.1"),
        ("0x01010101", "write it as 1.1.1.1", "write it as 1.1.1.1"),
        ("1.2.3.4.5", "dotted-quad form", "dotted-quad form"),
        ("08.8.8.8", "dotted-quad form", "dotted-quad form"),
        ("1.1.1.1.", "dotted-quad form", "dotted-quad form"),
        ("0x7f.1", "loopback", "write it as 127.0.0.1"),
        ("2130706433", "loopback", "write it as 127.0.0.1"),
    ],
)
def test_ipv4_hosts_not_in_dotted_quad_form_are_refused(
    host: str, public_as: str, private_as: str
) -> None:
    """A legacy spelling of an IPv4 address is never deliverable, so it is refused whatever
    RELAY_ALLOW_PRIVATE_URLS says: as the address it means when that is private, else
    naming the dotted quad to write."""
    with pytest.raises(UnsafeURL, match=public_as):
        check_url(f"https://{host}/hook", allow_private=False)
    with pytest.raises(UnsafeURL, match=private_as):
        check_url(f"http://{host}/hook", allow_private=True)


@pytest.mark.parametrize("host", ["1.1.1.1", "hooks.example.com", "0x.example.com", "123.example"])
def test_dotted_quads_and_names_with_digits_still_pass(host: str) -> None:
    """Only numeric hosts are judged as IPv4 spellings; names are left to the resolver."""
    assert check_url(f"https://{host}/", allow_private=False).host == host
