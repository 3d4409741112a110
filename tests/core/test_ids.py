"""Prefixed ULIDs."""

from __future__ import annotations

import re

from relay.core.ids import MonotonicUlid, new_id, ulid


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
