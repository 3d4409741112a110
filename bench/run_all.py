"""Run every benchmark in one go and write ``bench/RESULTS.md``: ours beside each baseline.

    python bench/run_all.py [--quick]

Each benchmark runs as its own process (``bench/ack.py``, ``bench/poller.py``,
``bench/relay.py``) and prints a last line that sums it up; this script reads
those lines, checks every target of the issues against them and writes one
table, with the machine it ran on and each benchmark's full output. Ratios, not
absolute times, are what carries over between machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
_NUMBER = r"([0-9.]+)"


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured figure, its baseline and the target it is held to."""

    measure: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    met: bool


@dataclass(frozen=True)
class Bench:
    script: str
    quick_args: tuple[str, ...]
    rows: Callable[[str], list[Row]]


def _match(pattern: str, line: str) -> list[float]:
    found = re.search(pattern, line)
    if found is None:
        raise ValueError(f"summary line not understood: {line!r}")
    return [float(group) for group in found.groups()]


def _ack_rows(line: str) -> list[Row]:
    ours, ours_p99, bare, bare_p99, ratio, p99_ratio = _match(
        rf"ours {_NUMBER} req/s p99 {_NUMBER} ms \| bare Bolt {_NUMBER} req/s p99 {_NUMBER} ms"
        rf" \| throughput ratio {_NUMBER}, p99 ratio {_NUMBER}",
        line,
    )
    return [
        Row(
            "Slack ack throughput",
            f"{ours:.0f} req/s",
            f"bare Bolt {bare:.0f} req/s",
            ratio,
            "≥ 0.90",
            ratio >= 0.90,
        ),
        Row(
            "Slack ack p99 latency",
            f"{ours_p99:.1f} ms",
            f"bare Bolt {bare_p99:.1f} ms",
            p99_ratio,
            "≤ 1.25",
            p99_ratio <= 1.25,
        ),
    ]


def _poller_rows(line: str) -> list[Row]:
    ours, fixed, ratio, delay, relative, redis_bytes = _match(
        rf"ours {_NUMBER} GETs/op vs fixed {_NUMBER} GETs/op \(ratio {_NUMBER}\), p95 delay"
        rf" {_NUMBER} s \({_NUMBER} of max\(2 s, 10%\)\); redis {_NUMBER} bytes/op",
        line,
    )
    return [
        Row(
            "Glider GETs per operation",
            f"{ours:.1f}",
            f"fixed 2 s polling {fixed:.1f}",
            ratio,
            "≤ 0.33",
            ratio <= 1 / 3,
        ),
        Row(
            "p95 detection delay",
            f"{delay:.1f} s",
            "max(2 s, 10% of duration)",
            relative,
            "≤ 1.00",
            relative <= 1.0,
        ),
        Row(
            "Redis per tracked operation",
            f"{redis_bytes:.0f} B",
            "1 KB",
            redis_bytes / 1024,
            "< 1.00",
            redis_bytes < 1024,
        ),
    ]


def _relay_rows(line: str) -> list[Row]:
    ours, arq, bare, over_arq, over_bare = _match(
        rf"ours {_NUMBER}/s \| arq {_NUMBER}/s \| bare {_NUMBER}/s \| ours/arq {_NUMBER}"
        rf" \| ours/bare {_NUMBER}",
        line,
    )
    return [
        Row(
            "webhook deliveries vs arq",
            f"{ours:.0f}/s",
            f"arq {arq:.0f}/s",
            over_arq,
            "≥ 4.00",
            over_arq >= 4,
        ),
        Row(
            "webhook deliveries vs bare sender",
            f"{ours:.0f}/s",
            f"bare {bare:.0f}/s",
            over_bare,
            "≥ 0.60",
            over_bare >= 0.6,
        ),
    ]


BENCHES = (
    Bench("ack.py", ("--requests", "2000", "--warmup", "200", "--rounds", "4"), _ack_rows),
    Bench("poller.py", ("--operations", "20000"), _poller_rows),
    Bench("relay.py", ("--events", "5000"), _relay_rows),
)


def run(bench: Bench, quick: bool) -> tuple[str, float]:
    """Run one benchmark, echoing its output; return (output, seconds)."""
    command = [sys.executable, str(ROOT / "bench" / bench.script)]
    if quick:
        command += bench.quick_args
    print(f"== {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{bench.script} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout, time.monotonic() - started


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    redis = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split(" sha=")[0]
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, {redis}"
    )


def render(rows: list[Row], outputs: dict[str, tuple[str, float]], quick: bool) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"One run of `python bench/run_all.py{' --quick' if quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {machine()}. Shared and noisy: compare the ratios, not the absolute figures.",
        "",
        "| measure | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        met = "yes" if row.met else "**no**"
        lines.append(
            f"| {row.measure} | {row.ours} | {row.baseline} | {ratio} | {row.target} | {met} |"
        )
    for script, (output, seconds) in outputs.items():
        lines += ["", f"## `bench/{script}` ({seconds:.0f} s)", "", "```", output.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args()
    rows: list[Row] = []
    outputs: dict[str, tuple[str, float]] = {}
    for bench in BENCHES:
        output, seconds = run(bench, args.quick)
        outputs[bench.script] = (output, seconds)
        rows += bench.rows(output.strip().splitlines()[-1])
    RESULTS.write_text(render(rows, outputs, args.quick))
    print(f"wrote {RESULTS.relative_to(ROOT)}: {sum(r.met for r in rows)}/{len(rows)} targets met")


if __name__ == "__main__":
    main()
