"""Fuzzing the SSRF guard: any URL and any DNS answer end in acceptance or UnsafeURL, never else."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.webhooks.ssrf import (
    GuardedResolver,
    IPAddress,
    UnsafeURL,
    blocked_reason,
    check_destination,
    check_url,
)
from tests.fixtures.webhooks import resolve_results
from tests.fuzz.support import FUZZ, Tally

EXAMPLES = 600


def _host(address: IPAddress) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


HOSTS = st.one_of(
    st.ip_addresses().map(_host),
    st.ip_addresses(v=6).map(str),  # unbracketed: not a valid host
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True),
    st.sampled_from(
        [
            "localhost",
            "0",
            "0x7f.1",
            "2130706433",
            "127.1",
            "[::ffff:127.0.0.1]",
            "[fe80::1%25eth0]",
        ]
    ),
    st.text(max_size=30),
)
PORTS = st.one_of(
    st.just(""),
    st.integers(-10, 70_000).map(lambda p: f":{p}"),
    st.text(max_size=6).map(lambda t: f":{t}"),
)
PLAUSIBLE = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["https", "http"]),
    st.one_of(
        st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z]{2,6}){1,2}", fullmatch=True),
        st.ip_addresses().map(_host),
    ),
    st.sampled_from(["", ":443", ":8443"]),
    st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=20),
)
URLS = st.one_of(
    PLAUSIBLE,
    st.text(max_size=120),
    st.builds(
        lambda *parts: "".join(parts),
        st.sampled_from(["https", "http", "HTTPS", "ftp", "javascript", "file", ""]),
        st.sampled_from(["://", ":", ":/", ":///", "://\\"]),
        st.sampled_from(["", "user@", "user:pass@", ":@", "@"]),
        HOSTS,
        PORTS,
        st.text(max_size=30),
    ),
)
# What a resolver may answer: addresses, nothing at all, or a lookup failure (None).
PUBLIC = st.ip_addresses().filter(lambda a: blocked_reason(a) is None).map(str)
ANSWERS = st.one_of(
    st.none(),
    st.lists(PUBLIC, min_size=1, max_size=3),
    st.lists(st.ip_addresses().map(str), max_size=4),
)


class Answers(AbstractResolver):
    """A resolver answering every host with the drawn addresses (or failing)."""

    def __init__(self, addresses: list[str] | None) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self.addresses is None:
            raise OSError(f"no such host {host}")
        return resolve_results(host, port, self.addresses)

    async def close(self) -> None:
        return None


def _public(addresses: list[str]) -> bool:
    return bool(addresses) and all(
        blocked_reason(ipaddress.ip_address(a)) is None for a in addresses
    )


@pytest.mark.cases(EXAMPLES, "accepted", "refused")
@settings(FUZZ, max_examples=EXAMPLES)
@given(raw=URLS, allow_private=st.booleans())
def test_check_url_accepts_or_raises_unsafe_url(
    tally: Tally, raw: str, allow_private: bool
) -> None:
    """check_url on any string: a Target that obeys the rules, or UnsafeURL; nothing else."""
    try:
        target = check_url(raw, allow_private=allow_private)
    except UnsafeURL:
        tally.add("refused")
        return
    tally.add("accepted")
    assert target.url.scheme in (("https", "http") if allow_private else ("https",))
    assert target.host
    if target.literal is not None and not allow_private:
        assert blocked_reason(target.literal) is None


@pytest.mark.cases(EXAMPLES, "accepted", "refused")
@settings(FUZZ, max_examples=EXAMPLES)
@given(raw=URLS, answer=ANSWERS)
async def test_check_destination_follows_every_resolved_address(
    tally: Tally, raw: str, answer: list[str] | None
) -> None:
    """Save-time check: accepted exactly when the URL is valid and every address is public."""
    resolver = GuardedResolver(Answers(answer), allow_private=False)
    try:
        await check_destination(raw, resolver, allow_private=False)
    except UnsafeURL:
        tally.add("refused")
        accepted = False
    else:
        tally.add("accepted")
        accepted = True
    try:
        target = check_url(raw, allow_private=False)
    except UnsafeURL:
        assert not accepted
        return
    assert accepted == (target.literal is not None or (answer is not None and _public(answer)))


@pytest.mark.cases(EXAMPLES, "blocked", "public")
@settings(FUZZ, max_examples=EXAMPLES)
@given(address=st.ip_addresses())
def test_blocked_reason_never_passes_a_non_global_address(tally: Tally, address: IPAddress) -> None:
    """Any IPv4/IPv6 address: a reason, or None only for a globally routable one."""
    reason = blocked_reason(address)
    tally.add("blocked" if reason else "public")
    if reason is None:
        assert address.is_global
