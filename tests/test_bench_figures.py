"""bench/run_all.py's table and JSON line, from benchmarks' last lines (pure functions)."""

from __future__ import annotations

import json

from bench import run_all
from bench.figures import (
    JSON_KEYS,
    KEYS_BY_SCRIPT,
    TARGETS,
    extra_figures,
    missing,
    parse_last_line,
    rows,
    summary_json,
    table,
)

ACK_LINE = json.dumps(
    {
        "ack_durable_throughput_ratio": 0.95,
        "ack_durable_p99_ratio": 1.4,
        "ack_bare_throughput_ratio": 0.6,
        "ours_throughput": 1500.0,
        "durable_throughput": 1578.9,
        "summary": "ack: ours 1500 req/s",
    }
)


def test_a_json_last_line_gives_the_scripts_figures_and_summary() -> None:
    outcome = parse_last_line("ack.py", "warming up\n" + ACK_LINE + "\n", 0)
    assert outcome.error is None
    assert outcome.summary == "ack: ours 1500 req/s"
    assert outcome.figures == {
        "ack_durable_throughput_ratio": 0.95,
        "ack_durable_p99_ratio": 1.4,
        "ack_bare_throughput_ratio": 0.6,
    }


def test_an_old_style_last_line_is_a_failed_bench_with_null_figures() -> None:
    outcome = parse_last_line("relay.py", "relay: ours 3725/s | arq 672/s\n", 0)
    assert outcome.error == "failed: its last line is not a JSON object"
    assert outcome.figures == {"relay_bare_ratio": None, "relay_arq_ratio": None}


def test_exit_status_timeout_and_silence_are_failures() -> None:
    assert parse_last_line("ack.py", ACK_LINE, 1).error == "failed: exited 1"
    assert (
        parse_last_line("ack.py", ACK_LINE, None).error == "failed: did not finish within its time"
    )
    assert parse_last_line("ack.py", "", 0).error == "failed: printed nothing"
    assert (
        parse_last_line("ack.py", "[1, 2]", 0).error == "failed: its last line is not a JSON object"
    )
    assert missing("cluster.py").figures == {"cluster_delivery_share_max_deviation": None}


def test_figures_that_are_not_finite_numbers_are_null() -> None:
    line = json.dumps({"relay_bare_ratio": "0.9", "relay_arq_ratio": True})
    outcome = parse_last_line("relay.py", line.replace('"0.9"', "NaN"), 0)
    assert outcome.figures == {"relay_bare_ratio": None, "relay_arq_ratio": None}


def test_the_json_line_has_exactly_the_issues_keys_and_quick() -> None:
    outcomes = {
        "ack.py": parse_last_line("ack.py", ACK_LINE, 0),
        "relay.py": parse_last_line("relay.py", "no json", 0),
    }
    data = json.loads(summary_json(outcomes, quick=True))
    assert set(data) == {*JSON_KEYS, "quick"}
    assert len(JSON_KEYS) == 11
    assert data["quick"] is True
    assert data["ack_durable_throughput_ratio"] == 0.95
    assert data["relay_bare_ratio"] is None
    assert data["isolation_p99_ratio"] is None


def test_the_table_has_a_row_per_target_with_met_and_failures() -> None:
    outcomes = {
        "ack.py": parse_last_line("ack.py", ACK_LINE, 0),
        "poller.py": parse_last_line("poller.py", "boom", 2),
    }
    by_measure = {
        (r.measure, r.baseline.removesuffix(" 1579 req/s")): r
        for r in rows(outcomes, {"ack.py": extra_figures(ACK_LINE)})
    }
    assert len(by_measure) == len(TARGETS)
    durable = by_measure["Slack ack throughput", "Bolt + one XADD"]
    assert (durable.ours, durable.baseline, durable.ratio, durable.target, durable.met) == (
        "1500 req/s",
        "Bolt + one XADD 1579 req/s",
        "0.95",
        "≥ 0.9",
        "yes",
    )
    assert by_measure["Slack ack p99 latency", "Bolt + one XADD"].met == "**no**"
    assert by_measure["Slack ack throughput", "bare Bolt (no Redis)"].met == "—"
    memory = by_measure["Redis bytes per tracked operation, Redis defaults", "1,000 B"]
    assert memory.met == "failed: exited 2"
    isolation = by_measure[
        "healthy subscriber p99, failing subscribers present / without", "the same subscriber alone"
    ]
    assert isolation.met == "not run"


def test_the_rendered_table_escapes_pipes_in_cells() -> None:
    outcomes = {"ack.py": parse_last_line("ack.py", ACK_LINE, 0)}
    lines = table(rows(outcomes, {}))
    assert lines[0] == "| measure | ours | baseline | ratio | target | met |"
    assert all(line.count(" | ") == 5 for line in lines[2:])
    assert any("\\|share - 1/3\\|" in line for line in lines)


def test_run_all_runs_every_script_that_has_keys() -> None:
    assert {b.script for b in run_all.BENCHES} == set(KEYS_BY_SCRIPT)
    assert sum(b.budget_s for b in run_all.BENCHES) <= run_all.TOTAL_S <= 9 * 60
