"""Run every benchmark in one go and write ``bench/RESULTS.md``: ours beside each baseline.

    python bench/run_all.py [--quick] [--json]

Each benchmark runs as its own process (bench/isolation.py, ack.py, relay.py,
poller.py, cluster.py) and prints, as its last stdout line, one JSON object of
figures and a ``summary``; bench/figures.py reads those lines into one table, with
each target met or not, the machine it ran on and each benchmark's full output.
A benchmark that is missing, fails, runs out of time or ends in anything but a
JSON line is reported as failed (its figures null), not a crash. ``--json`` prints,
as the last line, the figures of this run as one JSON object (bench/figures.py
``JSON_KEYS`` and ``quick``). The whole run stays within ``TOTAL_S``. Ratios, not
absolute times, are what carries over between machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import (  # noqa: E402
    Outcome,
    extra_figures,
    missing,
    parse_last_line,
    rows,
    summary_json,
    table,
)

RESULTS = ROOT / "bench" / "RESULTS.md"
TOTAL_S = 8.5 * 60  # the 9 minutes, less this script's own time
QUICK_ENV = "GLIDER_BENCH_QUICK"  # set to 1 for every bench under --quick


@dataclass(frozen=True)
class Bench:
    script: str
    budget_s: float  # its share of TOTAL_S
    quick_args: tuple[str, ...] = ()


BENCHES = (
    Bench("isolation.py", 90),
    Bench("ack.py", 90, ("--requests", "2000", "--warmup", "200", "--rounds", "4")),
    Bench("relay.py", 150, ("--events", "5000")),
    Bench("poller.py", 110, ("--operations", "20000")),
    Bench("cluster.py", 70),
)


def run(bench: Bench, quick: bool, timeout: float) -> tuple[Outcome, str, float]:
    """Run one benchmark, echoing its output: (outcome, output, seconds)."""
    path = ROOT / "bench" / bench.script
    if not path.exists():
        return missing(bench.script), "[failed: no such script]", 0.0
    command = [sys.executable, str(path), *(bench.quick_args if quick else ())]
    env = os.environ | ({QUICK_ENV: "1"} if quick else {})
    print(f"== {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=timeout
        )
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, code = _text(exc.stdout), _text(exc.stderr), None
    seconds = time.monotonic() - started
    print(stdout, end="", flush=True)
    outcome = parse_last_line(bench.script, stdout, code)
    if outcome.error is not None:
        stdout += f"\n[{outcome.error}]\n{stderr[-4000:]}"
    return outcome, stdout, seconds


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


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


def render(outcomes: dict[str, Outcome], outputs: dict[str, tuple[str, float]], quick: bool) -> str:
    extras = {script: extra_figures(output) for script, (output, _) in outputs.items()}
    lines = [
        "# Benchmark results",
        "",
        f"One run of `python bench/run_all.py{' --quick' if quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {machine()}. Shared and noisy: compare the ratios, not the absolute figures.",
        "",
        *table(rows(outcomes, extras)),
    ]
    for script, (output, seconds) in outputs.items():
        lines += ["", f"## `bench/{script}` ({seconds:.0f} s)", "", "```", output.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--json", action="store_true", help="end with the figures as JSON")
    args = parser.parse_args()
    outcomes: dict[str, Outcome] = {}
    outputs: dict[str, tuple[str, float]] = {}
    deadline = time.monotonic() + TOTAL_S
    for bench in BENCHES:
        timeout = max(1.0, min(bench.budget_s, deadline - time.monotonic()))
        outcome, output, seconds = run(bench, args.quick, timeout)
        outcomes[bench.script], outputs[bench.script] = outcome, (output, seconds)
    RESULTS.write_text(render(outcomes, outputs, args.quick))
    failed = [o.script for o in outcomes.values() if o.error is not None]
    print(f"wrote {RESULTS.relative_to(ROOT)}; failed: {', '.join(failed) or 'none'}")
    if args.json:
        print(summary_json(outcomes, quick=args.quick))


if __name__ == "__main__":
    main()
