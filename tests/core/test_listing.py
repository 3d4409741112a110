"""Pages of the portfolio list: offsets clamp and align, counts and buttons add up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.core.listing import MAX_LISTED, Listing, PortfolioRow, page_of, parse_offset


def _listing(count: int) -> Listing:
    return Listing(rows=tuple(PortfolioRow(portfolio_id=f"pf_{i}") for i in range(count)))


@given(st.integers(0, 1000), st.integers(-50, 5000), st.integers(1, 50))
def test_any_offset_gives_a_page_inside_the_list(count: int, offset: int, size: int) -> None:
    """Pages never overlap the ends, and shown + not shown is the total."""
    page = page_of(_listing(count), offset, size)
    assert page.offset % size == 0
    assert len(page.rows) <= size
    assert len(page.rows) + page.not_shown == count
    assert (page.next_offset is None) == (page.last >= count)
    assert (page.previous_offset is None) == (page.offset == 0)


def test_the_last_page_of_500() -> None:
    """Offset 480 of 500 by 20: rows 481-500, a way back and none forward."""
    page = page_of(_listing(500), 480, 20)
    assert (page.first, page.last, page.not_shown) == (481, 500, 480)
    assert (page.previous_offset, page.next_offset) == (460, None)


def test_only_digits_below_the_cap_are_offsets() -> None:
    """A paging button's value is an offset into the listing, or refused."""
    assert parse_offset("20") == 20
    for bad in ("", "-1", "1e3", "٣", str(MAX_LISTED), "99999999", " 2"):
        assert parse_offset(bad) is None
