"""The overview chart: deliveries per minute and success rate, as SVG geometry. Pure.

The template draws what :func:`chart` returns (bars for attempts per minute, a
polyline for the success rate); no script, so it renders with JavaScript off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from relay.store.delivery_stats import MinuteStat

WIDTH = 600
HEIGHT = 160
PAD = 24


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the tooltip: minute, attempts, success rate


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    rate_dots: list[tuple[float, float]]  # the success rate, minutes with attempts only
    peak: int
    total: int
    succeeded: int

    @property
    def rate_points(self) -> str:
        """The rate line as SVG ``points``."""
        return " ".join(f"{x},{y}" for x, y in self.rate_dots)

    @property
    def success_rate(self) -> str:
        return f"{100 * self.succeeded / self.total:.1f} %" if self.total else "no deliveries"


def _minute_label(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")


def chart(stats: Sequence[MinuteStat]) -> Chart:
    """Bars scaled to the busiest minute; the rate line spans the plot's full height."""
    peak = max((s.total for s in stats), default=0)
    plot_h = HEIGHT - 2 * PAD
    step = (WIDTH - 2 * PAD) / max(len(stats), 1)
    bars: list[Bar] = []
    points: list[tuple[float, float]] = []
    for i, stat in enumerate(stats):
        x = PAD + i * step
        height = plot_h * stat.total / peak if peak else 0.0
        rate = stat.succeeded / stat.total if stat.total else None
        shown = f"{rate:.0%}" if rate is not None else "-"
        label = f"{_minute_label(stat.minute)} UTC: {stat.total} attempts, {shown} succeeded"
        bars.append(
            Bar(
                round(x, 1),
                round(PAD + plot_h - height, 1),
                round(step * 0.8, 1),
                round(height, 1),
                label,
            )
        )
        if rate is not None:
            points.append((round(x + step * 0.4, 1), round(PAD + plot_h * (1 - rate), 1)))
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        points,
        peak,
        sum(s.total for s in stats),
        sum(s.succeeded for s in stats),
    )
