"""The portfolio list of the App Home and ``/rebalance list``: rows, and pages of them.

Glider pages ``GET /v2/portfolios`` by an opaque cursor, so the total is only known
once every page is read. The list is walked to at most :data:`MAX_LISTED` rows
(cached briefly, relay/store/listing.py) and paged here by offset, which gives
each page its "N more" count. Pure: no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from relay.core.bounds import NAME_CHARS
from relay.glider.errors import upstream_text
from relay.glider.models import GliderTime, PortfolioDetail

MAX_LISTED = 1000  # rows kept of Glider's list; beyond, the view says the list is cut
GLIDER_PAGE = 200  # rows asked of Glider per request (its maximum)
HOME_PAGE = 20  # portfolios per Home tab page (one block each, well under 100 blocks)
CHANNEL_PAGE = 10  # portfolios per /rebalance list page (a message holds 50 blocks)


class PortfolioRow(BaseModel):
    """What a list shows of one portfolio (its Glider texts already bounded by the model)."""

    model_config = ConfigDict(frozen=True)

    portfolio_id: str = Field(max_length=NAME_CHARS)
    name: str | None = Field(default=None, max_length=NAME_CHARS)
    status: str | None = Field(default=None, max_length=NAME_CHARS)  # None: no schedule
    frequency: str | None = Field(default=None, max_length=NAME_CHARS)
    # Glider's times, so that a row read back from the cache is aware UTC as well.
    next_due_at: GliderTime | None = None
    last_rebalance_at: GliderTime | None = None

    @classmethod
    def of(cls, portfolio: PortfolioDetail) -> PortfolioRow:
        schedule = portfolio.schedule
        return cls(
            # Glider's id is unbounded: scrubbed before it is cut, like all its text.
            portfolio_id=upstream_text(portfolio.portfolio_id, NAME_CHARS) or "",
            name=portfolio.portfolio_name or None,
            status=schedule.status.value if schedule else None,
            frequency=schedule.frequency if schedule else None,
            next_due_at=schedule.next_due_at if schedule else None,
            last_rebalance_at=schedule.last_rebalance_at if schedule else None,
        )


class Listing(BaseModel):
    """Glider's portfolios, newest first; ``cut``: Glider had more than :data:`MAX_LISTED`."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[PortfolioRow, ...] = Field(default=(), max_length=MAX_LISTED)
    cut: bool = False


class Page(BaseModel):
    """One page of a listing: its rows, where it starts, and how many rows there are."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[PortfolioRow, ...]
    offset: int  # index of the first row shown
    total: int  # rows listed (of those the user may see)
    size: int
    cut: bool = False

    @property
    def first(self) -> int:
        """1-based number of the first row shown (0 on an empty page)."""
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)

    @property
    def not_shown(self) -> int:
        """Rows of the listing not on this page."""
        return self.total - len(self.rows)

    @property
    def previous_offset(self) -> int | None:
        return max(0, self.offset - self.size) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        return self.last if self.last < self.total else None


def page_of(listing: Listing, offset: int, size: int) -> Page:
    """The page starting at ``offset`` (clamped into the listing, aligned to ``size``)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    total = len(listing.rows)
    start = min(max(0, offset), max(0, total - 1))
    start -= start % size
    return Page(
        rows=listing.rows[start : start + size],
        offset=start,
        total=total,
        size=size,
        cut=listing.cut,
    )


def parse_offset(value: str) -> int | None:
    """A paging button's value (an offset into the listing), or None when it is not one."""
    if not value.isascii() or not value.isdigit() or len(value) > 5:
        return None
    offset = int(value)
    return offset if offset < MAX_LISTED else None
