"""Prefixed ULIDs."""

from __future__ import annotations

import re

from relay.core.ids import MonotonicUlid, new_id, sibling_id, ulid


def test_ulid_shape_and_known_encoding() -> None:
    """26 Crockford characters; time zero and zero randomness encode as all zeros."""
    assert ulid(0, bytes(10)) == "0" * 26
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", ulid())


def test_ulids_sort_by_time() -> None:
    """A later millisecond sorts after an earlier one whatever the randomness."""
    assert ulid(1_000, b"\xff" * 10) < ulid(1_001, bytes(10))


def test_new_id_has_prefix() -> None:
    """Ids carry their kind as a prefix."""
    assert new_id("req").startswith("req_")
    assert len(new_id("req")) == 30


def test_ids_made_in_one_millisecond_keep_creation_order() -> None:
    """Monotonic mode: many ids in the same millisecond still sort as they were made."""
    make = MonotonicUlid()
    ids = [make(now_ms=1_700_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000


def test_new_ids_sort_in_creation_order() -> None:
    """new_id never goes backwards, however fast it is called."""
    ids = [new_id("req") for _ in range(2000)]
    assert ids == sorted(ids)


def test_ulid_encoding_is_crockford_base32_of_the_128_bits() -> None:
    """The table encoder spells each 5 bits, most significant first (the ULID spec)."""
    crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = int.from_bytes(bytes(range(1, 17)), "big")
    expected = "".join(crockford[(value >> (5 * (25 - i))) & 0x1F] for i in range(26))
    assert ulid(value >> 80, (value & (2**80 - 1)).to_bytes(10, "big")) == expected
    assert ulid(2**48 - 1, b"\xff" * 10) == "7" + "Z" * 25


def test_a_sibling_id_shares_the_request_ids_ulid() -> None:
    """aud_/evt_ of a request: its ULID under another prefix; a foreign id gets a new one."""
    request_id = new_id("req")
    assert sibling_id("aud", request_id) == "aud_" + request_id.removeprefix("req_")
    assert sibling_id("evt", request_id) == "evt_" + request_id.removeprefix("req_")
    other = sibling_id("aud", "req_1")
    assert other.startswith("aud_")
    assert len(other) == 30
    assert other != sibling_id("aud", "req_1")
