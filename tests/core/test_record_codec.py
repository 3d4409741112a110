"""The request record's chunked, short-named hash form (relay/core/record_codec.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.core.record_codec import CHUNK_BYTES, LONG, SHORT, pack, split, unpack

_NAMES = st.sampled_from([*SHORT, "state", "x_tracked_ms"])


@given(st.text(max_size=600))
def test_split_keeps_every_character_in_chunks_of_at_most_64_bytes(value: str) -> None:
    parts = split(value)
    assert "".join(parts) == value
    assert all(len(part.encode()) <= CHUNK_BYTES for part in parts)


@given(st.text(st.characters(max_codepoint=127), max_size=600))
def test_ascii_is_split_into_full_chunks_like_any_text(value: str) -> None:
    """Plain ASCII (URLs, JSON) takes the slicing path: full 64-byte chunks, the rest last."""
    parts = split(value)
    assert "".join(parts) == value
    assert all(len(part) == CHUNK_BYTES for part in parts[:-1])
    assert 0 < len(parts[-1]) <= CHUNK_BYTES or value == ""


@given(st.dictionaries(_NAMES, st.text(max_size=400)))
def test_pack_then_unpack_gives_the_fields_back(fields: dict[str, str]) -> None:
    packed = pack(fields)
    assert all(len(value.encode()) <= CHUNK_BYTES for value in packed.values())
    assert unpack(packed) == fields


def test_the_previous_versions_long_names_and_whole_values_unpack_unchanged() -> None:
    old = {"operation_id": "o" * 150, "state": "submitted", "x_posts": "1"}
    assert unpack(old) == old


def test_a_short_name_wins_over_the_long_one_it_replaces() -> None:
    assert unpack({"operation_id": "old", "op": "new"}) == {"operation_id": "new"}


def test_short_names_are_new_to_the_hash() -> None:
    """No short name is a model field's (or Lua's ``state``): old and new never collide."""
    assert not set(LONG) & (set(SHORT) | {"state"})
    assert len(LONG) == len(SHORT)
