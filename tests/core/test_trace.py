"""The W3C ``traceparent`` header: what is read, what is written, what is ignored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.trace import TRACEPARENT_CHARS, TraceParent, first_header, new_root, parse

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_hex = "0123456789abcdef"
_ids = st.tuples(
    st.text(_hex, min_size=32, max_size=32).filter(lambda t: t != "0" * 32),
    st.text(_hex, min_size=16, max_size=16).filter(lambda s: s != "0" * 16),
    st.integers(0, 255),
)


def test_a_valid_header_is_read_and_written_back() -> None:
    """The specification's example parses to its fields and formats to itself."""
    parent = parse(VALID)
    assert parent == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert parent.sampled
    assert parent.header() == VALID
    assert len(VALID) == TRACEPARENT_CHARS


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        VALID.upper(),  # hex is lower case
        VALID[:-1],  # too short
        VALID + "-extra",  # version 00 has exactly four fields
        VALID + "0",
        "ff" + VALID[2:],  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  # later version, no dash
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        VALID + " " * 600,  # far past any traceparent's length
    ],
)
def test_an_invalid_header_is_ignored(header: str | None) -> None:
    """Anything but a valid traceparent reads as no parent (a new trace), never an error."""
    assert parse(header) is None


def test_a_later_version_is_read_as_version_00() -> None:
    """A future version's first four fields are read; what follows them is dropped."""
    parent = parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-next")
    assert parent == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 3)
    assert parent.header().startswith("00-")


def test_surrounding_blanks_are_allowed() -> None:
    """Optional whitespace around the value (as HTTP allows) is not part of it."""
    assert parse(f" \t{VALID} ") == parse(VALID)


@given(st.text(max_size=120))
def test_any_text_parses_to_none_or_a_header_that_reads_back(text: str) -> None:
    """Arbitrary input never crashes; what it yields formats to a header that parses again."""
    parent = parse(text)
    if parent is not None:
        assert parse(parent.header()) == parent


@given(_ids)
def test_every_valid_header_round_trips(ids: tuple[str, str, int]) -> None:
    """Any trace id, span id and flags make a 55-character header that parses to them."""
    parent = TraceParent(*ids)
    assert len(parent.header()) == TRACEPARENT_CHARS
    assert parse(parent.header()) == parent


def test_a_child_is_a_new_span_of_the_same_trace() -> None:
    """A child keeps the trace and flags, with a span id of its own."""
    parent = parse(VALID)
    assert parent is not None
    child = parent.child()
    assert (child.trace_id, child.flags) == (parent.trace_id, parent.flags)
    assert child.span_id != parent.span_id
    assert parse(child.header()) == child


def test_a_new_trace_is_sampled_with_valid_ids() -> None:
    """A root span has a valid header of its own, and two roots never share a trace."""
    first, second = new_root(), new_root()
    assert parse(first.header()) == first
    assert first.sampled
    assert first.trace_id != second.trace_id


def test_several_header_values_name_no_parent() -> None:
    """One traceparent is allowed; several make the header invalid."""
    assert first_header([VALID]) == VALID
    assert first_header(VALID) == VALID
    assert first_header([VALID, VALID]) is None
    assert first_header([]) is None
    assert first_header(None) is None
