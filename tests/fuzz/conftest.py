"""Fuzz fixtures: ``tally`` counts a test's cases; the run ends with a "fuzz cases" summary.

A test marked ``@pytest.mark.cases(minimum, *labels)`` fails unless it ran at
least ``minimum`` cases and saw each label at least once (so a fuzz test that
quietly stopped generating, or never reached an outcome, does not pass).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.fuzz.support import Tally

_TALLIES = pytest.StashKey[dict[str, Counter[str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cases(minimum, *labels): the least cases a fuzz test must run, by label"
    )


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """A case counter, checked against the test's ``cases`` mark and summarised at the end."""
    counter = Tally()
    yield counter
    request.config.stash.setdefault(_TALLIES, {})[request.node.nodeid] = counter.counts
    mark = request.node.get_closest_marker("cases")
    if mark is not None:
        minimum, *labels = mark.args
        assert counter.total >= minimum, f"ran {counter.total} cases, expected {minimum}"
        missing = [label for label in labels if not counter.counts[label]]
        assert not missing, f"never saw {missing}: {dict(counter.counts)}"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    tallies = config.stash.get(_TALLIES, {})
    if not tallies:
        return
    terminalreporter.section("fuzz cases")
    for nodeid, counts in tallies.items():
        detail = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
        terminalreporter.write_line(f"{nodeid}: {sum(counts.values())} cases ({detail})")
