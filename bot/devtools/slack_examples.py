"""Rendered examples of the bot's Slack payloads: ``python -m bot.devtools.slack_examples``.

Each example is a zero-argument callable in :data:`REGISTRY` (name -> the real payload,
built by the real builder from fixed data). The script writes ``docs/slack/<name>.json``
and ``docs/slack/README.md`` with one Block Kit Builder link per example; a test
(tests/bot/devtools/test_slack_examples.py) fails when the committed files differ from
what the builders produce, so the docs cannot drift. To add examples, merge another
module's ``EXAMPLES`` dict into :data:`REGISTRY` (see :func:`registry`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.home_messages import ApprovalLine, HomeData, ListView, home_view, portfolio_list
from relay.core.commands import Action, Requester
from relay.core.listing import CHANNEL_PAGE, HOME_PAGE, Listing, PortfolioRow, page_of
from relay.core.records import RequestRecord, RequestState
from relay.slack import cards
from relay.webhooks import alert_view

Example = Callable[[], dict[str, Any]]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "slack"
BUILDER = "https://app.slack.com/block-kit-builder/#"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _rows(count: int) -> Listing:
    names = ("Alice Conservative Yield", "Treasury", None, "Growth <& co>", "Stables")
    rows = tuple(
        PortfolioRow(
            portfolio_id=f"pf_{index:04d}",
            name=names[index % len(names)],
            status=None if index % 5 == 2 else ("paused" if index % 4 == 1 else "active"),
            frequency="daily",
            next_due_at=NOW + timedelta(hours=index + 1),
        )
        for index in range(count)
    )
    return Listing(rows=rows)


def _record(portfolio_id: str, state: RequestState, minutes_ago: int) -> RequestRecord:
    at = NOW - timedelta(minutes=minutes_ago)
    return RequestRecord(
        request_id=f"req_01JX{minutes_ago:022d}",
        action=Action.REBALANCE,
        portfolio_id=portfolio_id,
        state=state,
        requested_by=Requester(user_id="U1", user_name="alice"),
        accepted_at=at,
        updated_at=at,
        error_message="cooldown: wait 2 minutes" if state is RequestState.REJECTED else None,
    )


def home_empty() -> dict[str, Any]:
    """The Home tab when Glider lists no portfolio and nothing is pending."""
    return home_view(HomeData(user_id="U1", now=NOW, page=page_of(Listing(), 0, HOME_PAGE)))


def home_page() -> dict[str, Any]:
    """The second page of 45 portfolios, with records, an approval and latest commands."""
    page = page_of(_rows(45), HOME_PAGE, HOME_PAGE)
    latest = {
        "pf_0020": _record("pf_0020", RequestState.COMPLETED, 30),
        "pf_0021": _record("pf_0021", RequestState.REJECTED, 90),
    }
    approval = ApprovalLine(
        portfolio_id="pf_0023",
        request_id="req_01JX0000000000000000000007",
        requested_by="bob",
        expires_at=NOW + timedelta(minutes=50),
        mine=False,
    )
    commands = (latest["pf_0020"], latest["pf_0021"])
    data = HomeData(
        user_id="U1", now=NOW, page=page, latest=latest, approvals=(approval,), commands=commands
    )
    return home_view(data)


def home_glider_down() -> dict[str, Any]:
    """The Home tab when Glider did not answer: it says so."""
    note = "Glider did not list the portfolios in time; try again in a minute."
    return home_view(HomeData(user_id="U1", now=NOW, glider_note=note))


def rebalance_list() -> dict[str, Any]:
    """``/rebalance list``: the first page of 45 portfolios."""
    view = ListView(now=NOW, page=page_of(_rows(45), 0, CHANNEL_PAGE))
    return portfolio_list(view).payload()


# Home tab examples (this module); other modules' EXAMPLES join in registry().
EXAMPLES: dict[str, Example] = {
    "home_empty": home_empty,
    "home_page": home_page,
    "home_glider_down": home_glider_down,
    "rebalance_list": rebalance_list,
}


def registry(*more: Mapping[str, Example]) -> dict[str, Example]:
    """Every example: this module's, then each of ``more`` (a name may not repeat)."""
    found = dict(EXAMPLES)
    for examples in more:
        clash = set(found) & set(examples)
        if clash:
            raise ValueError(f"example names used twice: {sorted(clash)}")
        found.update(examples)
    return found


REGISTRY = registry(cards.EXAMPLES, alert_view.EXAMPLES)


def builder_link(payload: dict[str, Any]) -> str:
    """A Block Kit Builder link showing ``payload``'s blocks (a Home view as a home surface)."""
    surface = (
        {"type": "home", "blocks": payload["blocks"]}
        if payload.get("type") == "home"
        else {"blocks": payload["blocks"]}
    )
    return BUILDER + quote(json.dumps(surface, separators=(",", ":")), safe="")


def render(examples: Mapping[str, Example]) -> dict[str, str]:
    """File name -> content: one JSON per example and the README with their links."""
    files: dict[str, str] = {}
    lines = [
        "# Slack payloads, rendered",
        "",
        "Generated by `python -m bot.devtools.slack_examples` from the real builders; do not",
        "edit by hand (tests/bot/devtools/test_slack_examples.py checks these files).",
        "Each link opens the payload in Slack's Block Kit Builder.",
        "",
    ]
    for name in sorted(examples):
        example = examples[name]
        payload = example()
        files[f"{name}.json"] = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        doc = (example.__doc__ or name).strip().splitlines()[0]
        lines.append(f"- [{name}]({builder_link(payload)}): {doc} ([JSON]({name}.json))")
    files["README.md"] = "\n".join(lines) + "\n"
    return files


def write(target: Path = DOCS, examples: Mapping[str, Example] = REGISTRY) -> list[Path]:
    """Write every rendered file under ``target``; returns the paths written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render(examples).items():
        path = target / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DOCS, help="directory (default docs/slack)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
