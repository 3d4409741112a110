"""The figures of bench/run_all.py: each benchmark's JSON last line, the table, the JSON summary.

Pure functions (no processes, no files), so the table and the summary are unit-tested
(tests/test_bench_figures.py). A benchmark prints, as its last stdout line, one JSON
object of figures (numbers or null) and ``summary``, a line for people. Anything else
as the last line, or a failed run, makes that benchmark failed: its figures are null
and the table says why.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Figures = Mapping[str, float | None]

# Every key of ``run_all.py --json``, by the script that measures it.
KEYS_BY_SCRIPT: dict[str, tuple[str, ...]] = {
    "isolation.py": ("isolation_p99_ratio",),
    "ack.py": (
        "ack_durable_throughput_ratio",
        "ack_durable_p99_ratio",
        "ack_bare_throughput_ratio",
    ),
    "relay.py": ("relay_bare_ratio", "relay_arq_ratio"),
    "poller.py": (
        "poll_gets_ratio_uniform",
        "poll_gets_ratio_loguniform",
        "poll_p95_delay_bound_ratio",
        "redis_bytes_per_op_default",
    ),
    "cluster.py": ("cluster_delivery_share_max_deviation",),
}
JSON_KEYS = tuple(key for keys in KEYS_BY_SCRIPT.values() for key in keys)
SUMMARY_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    """One benchmark's run: its figures and summary, or why it has none."""

    script: str
    figures: Figures
    summary: str
    error: str | None = None


def parse_last_line(script: str, stdout: str, returncode: int | None) -> Outcome:
    """The outcome of ``script`` from its output; ``returncode`` None means it timed out."""
    lines = stdout.strip().splitlines()
    if returncode is None:
        return _failed(script, "did not finish within its time")
    if returncode != 0:
        return _failed(script, f"exited {returncode}")
    if not lines:
        return _failed(script, "printed nothing")
    try:
        data = json.loads(lines[-1])
    except ValueError:
        return _failed(script, "its last line is not a JSON object")
    if not isinstance(data, dict):
        return _failed(script, "its last line is not a JSON object")
    figures = {key: _number(data.get(key)) for key in KEYS_BY_SCRIPT.get(script, ())}
    summary = data.get("summary")
    return Outcome(script, figures, str(summary)[:SUMMARY_CHARS] if summary is not None else "")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def missing(script: str) -> Outcome:
    """The outcome of a benchmark whose script is not there."""
    return _failed(script, "no such script")


def _failed(script: str, why: str) -> Outcome:
    return Outcome(script, dict.fromkeys(KEYS_BY_SCRIPT.get(script, ())), "", f"failed: {why}")


@dataclass(frozen=True)
class Target:
    """A row of the issue's table: which figure, its baseline, and the bound it is held to."""

    key: str
    measure: str
    baseline: str
    bound: float | None  # None: shown, held to nothing
    compare: Callable[[float, float], bool] = operator.le
    symbol: str = "≤"
    ours: str | None = None  # the figure (a key of the bench's JSON) shown as "ours"
    base: str | None = None  # the baseline's figure (a key of the bench's JSON)
    unit: str = ""

    def describe(self) -> str:
        return "—" if self.bound is None else f"{self.symbol} {self.bound:.3g}"


TARGETS = (
    Target(
        "isolation_p99_ratio",
        "healthy subscriber p99, failing subscribers present / without",
        "the same subscriber alone",
        1.20,
    ),
    Target(
        "ack_durable_throughput_ratio",
        "Slack ack throughput",
        "Bolt + one XADD",
        0.90,
        operator.ge,
        "≥",
        "ours_throughput",
        "durable_throughput",
        " req/s",
    ),
    Target(
        "ack_durable_p99_ratio",
        "Slack ack p99 latency",
        "Bolt + one XADD",
        1.25,
        ours="ours_p99_ms",
        base="durable_p99_ms",
        unit=" ms",
    ),
    Target(
        "ack_bare_throughput_ratio",
        "Slack ack throughput",
        "bare Bolt (no Redis)",
        None,
        ours="ours_throughput",
        base="bare_throughput",
        unit=" req/s",
    ),
    Target("relay_bare_ratio", "webhook deliveries", "bare signed sender", 0.85, operator.ge, "≥"),
    Target("relay_arq_ratio", "webhook deliveries", "arq", 5.0, operator.ge, "≥"),
    Target(
        "redis_bytes_per_op_default",
        "Redis bytes per tracked operation, Redis defaults",
        "1,000 B",
        1000.0,
        operator.lt,
        "<",
    ),
    Target(
        "cluster_delivery_share_max_deviation",
        "largest |share - 1/3| / (1/3) of delivery work over 3 Cluster masters",
        "an even third each",
        0.20,
    ),
    Target("poll_gets_ratio_uniform", "Glider GETs per operation (uniform)", "fixed 2 s", 1 / 3),
    Target(
        "poll_gets_ratio_loguniform", "Glider GETs per operation (log-uniform)", "fixed 2 s", None
    ),
    Target("poll_p95_delay_bound_ratio", "p95 detection delay", "max(2 s, 10% of duration)", 1.0),
)


@dataclass(frozen=True)
class Row:
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: str


def _script_of(key: str) -> str:
    return next(script for script, keys in KEYS_BY_SCRIPT.items() if key in keys)


def rows(outcomes: Mapping[str, Outcome], extras: Mapping[str, Figures]) -> list[Row]:
    """The table: one row per target, "failed: ..." where its bench gave no figure.

    ``extras`` are each script's other figures (e.g. ``ours_throughput``), by script.
    """
    out = []
    for target in TARGETS:
        script = _script_of(target.key)
        outcome = outcomes.get(script)
        value = None if outcome is None else outcome.figures.get(target.key)
        figures = extras.get(script, {})
        ours = _shown(figures, target.ours, target.unit)
        base = _shown(figures, target.base, target.unit)
        baseline = f"{target.baseline} {base}" if base else target.baseline
        if value is None:
            why = "not run" if outcome is None else outcome.error or "not measured"
            out.append(Row(target.measure, ours, baseline, "", target.describe(), why))
            continue
        if target.bound is None:
            met = "—"
        else:
            met = "yes" if target.compare(value, target.bound) else "**no**"
        out.append(Row(target.measure, ours, baseline, f"{value:.3g}", target.describe(), met))
    return out


def _shown(figures: Figures, key: str | None, unit: str) -> str:
    value = figures.get(key) if key else None
    return "" if value is None else f"{value:.4g}{unit}"


def extra_figures(stdout: str) -> Figures:
    """Every number of a bench's JSON last line (for the "ours" column); empty if none."""
    lines = stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in ((k, _number(v)) for k, v in data.items()) if v is not None}


def table(table_rows: list[Row]) -> list[str]:
    lines = ["| measure | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in table_rows:
        cells = (r.measure, r.ours, r.baseline, r.ratio, r.target, r.met)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def summary_json(outcomes: Mapping[str, Outcome], *, quick: bool) -> str:
    """The ``--json`` line: exactly :data:`JSON_KEYS` (null where not measured) and ``quick``."""
    merged: dict[str, float | bool | None] = dict.fromkeys(JSON_KEYS)
    for outcome in outcomes.values():
        for key in KEYS_BY_SCRIPT.get(outcome.script, ()):
            merged[key] = outcome.figures.get(key)
    merged["quick"] = quick
    return json.dumps(merged)
