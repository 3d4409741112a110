"""Prefixed ULIDs."""

from __future__ import annotations

import re

from relay.ids import new_id, ulid


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
