"""SSRF guard for subscriber URLs: which URLs and addresses a webhook may reach.

``blocked_reason`` and ``check_url`` are pure. ``GuardedResolver`` is the I/O
shell: aiohttp connects to exactly the addresses a resolver returns, so checking
them there (every one of them, on every new connection) leaves no gap between
the check and the connect for a DNS answer to change (no DNS rebinding).
IP-literal hosts never reach a resolver; the sender checks them with ``check_url``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = IPv4Address | IPv6Address

_BLOCKED: tuple[tuple[IPv4Network | IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("100::/64", "reserved"),
        ("2001:db8::/32", "reserved"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "reserved"),
        ("ff00::/8", "multicast"),
    )
)
# IPv6 forms that always carry an IPv4 address to a host we cannot judge as IPv6: a v6
# socket to one of these reaches an IPv4 host (or a local translator), so they are refused
# whatever the IPv4 is; the reason names the embedded IPv4's class when it has one.
_V4_CARRIERS: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), reason)
    for net, reason in (
        ("::/96", "IPv4-compatible"),
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
    )
)
_LOCAL_NAT64 = IPv6Network("64:ff9b:1::/48")
_UNSPECIFIED_OR_LOOPBACK = (IPv6Address("::"), IPv6Address("::1"))
# Forms that route through a public translator or relay to the IPv4 they embed: they are
# judged by that IPv4 (Teredo by its server and its client).
_NAT64 = IPv6Network("64:ff9b::/96")
_TEREDO = IPv6Network("2001::/32")


def _low_ipv4(address: IPv6Address) -> IPv4Address:
    return IPv4Address(int(address) & 0xFFFFFFFF)


def _embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 one carries to (NAT64, 6to4, Teredo), if any."""
    if address in _NAT64:
        return (_low_ipv4(address),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address in _TEREDO and address.teredo is not None:
        return address.teredo
    return ()


def _carrier_reason(address: IPv6Address) -> str | None:
    if address in _LOCAL_NAT64:
        return "local-use NAT64"  # a site's own translator, to addresses only it knows
    for network, reason in _V4_CARRIERS:
        if address in network:
            inner = blocked_reason(_low_ipv4(address))
            return inner or reason
    return None


def _v6_reason(address: IPv6Address) -> str | None:
    """The verdict on an IPv6 address from its embedded IPv4, or None to judge it as v6.

    "" means public: every IPv4 it embeds is.
    """
    if address.scope_id is not None:
        return "link-local"
    if address in _UNSPECIFIED_OR_LOOPBACK:
        return None  # inside ::/96 but named as themselves by _BLOCKED
    carrier = _carrier_reason(address)
    if carrier is not None:
        return carrier
    embedded = _embedded_ipv4(address)
    for inner in embedded:
        reason = blocked_reason(inner)
        if reason is not None:
            return reason
    # Every embedded IPv4 is public: the translator reaches only that public host, so the
    # form is as public as it (Python calls all of 2001::/23, Teredo included, not global).
    return "" if embedded else None


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be a webhook target ("loopback", ...), or None if public."""
    if isinstance(address, IPv6Address):
        verdict = _v6_reason(address)
        if verdict is not None:
            return verdict or None
    for network, reason in _BLOCKED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "reserved"
    return None


class UnsafeURL(ValueError):
    """A subscriber URL (or an address it resolves to) that the relay refuses."""


class BlockedAddress(OSError):
    """Raised while connecting: the host resolved to an address the relay refuses."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: its host, and the literal address when the host is one."""

    url: URL
    host: str
    literal: IPAddress | None


# What aiohttp takes for an IPv4 address whatever else it is (aiohttp.helpers.is_ip_address).
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refuse_legacy_ipv4(host: str, *, allow_private: bool) -> None:
    """Refuse a host that is an IPv4 address not written as a dotted quad.

    ``getaddrinfo`` reads the legacy forms (``16843009``, ``01.01.01.01``, ``1.1.257``,
    ``0x01010101``) as an address, so a save-time resolve would pass them; but aiohttp
    never connects to a numeric host that is not a dotted quad, and no certificate names
    a hex one, so no delivery to such a URL could ever succeed.
    """
    try:
        meant: IPv4Address | None = IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        meant = None
    if meant is None and not _DIGITS_AND_DOTS.fullmatch(host):
        return  # a name, not an address
    if meant is not None and not allow_private:
        reason = blocked_reason(meant)
        if reason is not None:  # the more important refusal, as for a literal
            raise UnsafeURL(f"points at a {reason} address")
    hint = f"; write it as {meant}" if meant is not None else ""
    raise UnsafeURL(f"host {host} is not an IPv4 address in dotted-quad form{hint}")


def check_url(raw: str, *, allow_private: bool) -> Target:
    """Validate scheme and host, and a literal address (a dotted quad, for IPv4); raise
    :class:`UnsafeURL`."""
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        raise UnsafeURL("is not a valid URL") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if url.scheme not in allowed:
        raise UnsafeURL("must start with " + " or ".join(f"{s}://" for s in allowed))
    if not url.host:
        raise UnsafeURL("must have a host")
    if url.user or url.password:
        raise UnsafeURL("must not carry credentials")
    literal = _literal(url.host)
    if literal is None:
        _refuse_legacy_ipv4(url.host, allow_private=allow_private)
    elif not allow_private:
        reason = blocked_reason(literal)
        if reason is not None:
            raise UnsafeURL(f"points at a {reason} address")
    return Target(url=url, host=url.host, literal=literal)


def check_addresses(host: str, addresses: list[str]) -> None:
    """Raise :class:`BlockedAddress` unless every address of ``host`` is public."""
    if not addresses:
        raise BlockedAddress(f"{host} resolved to no address")
    for text in addresses:
        reason = blocked_reason(ipaddress.ip_address(text))
        if reason is not None:
            raise BlockedAddress(f"{host} resolves to a {reason} address")


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner``, then refuses the host unless every address is allowed."""

    def __init__(self, inner: AbstractResolver | None = None, *, allow_private: bool) -> None:
        self._inner = inner if inner is not None else DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            check_addresses(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_destination(raw: str, resolver: GuardedResolver, *, allow_private: bool) -> None:
    """The save-time check: the URL's form, then every address its host resolves to."""
    target = check_url(raw, allow_private=allow_private)
    if target.literal is not None or allow_private:
        return
    try:
        await resolver.resolve(target.host, target.url.port or 443, socket.AF_UNSPEC)
    except BlockedAddress as exc:
        raise UnsafeURL(str(exc).replace(target.host, "host", 1)) from None
    except OSError:
        raise UnsafeURL("host does not resolve") from None
