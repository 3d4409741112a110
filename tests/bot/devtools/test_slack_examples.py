"""docs/slack holds exactly what the builders render, and every example is valid Block Kit."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from bot.devtools import slack_examples
from tests.fixtures.blockkit import message_errors, view_errors


def test_committed_docs_match_the_builders() -> None:
    """Run `python -m bot.devtools.slack_examples` when this fails: the docs drifted."""
    rendered = slack_examples.render(slack_examples.REGISTRY)
    committed = {p.name: p.read_text(encoding="utf-8") for p in slack_examples.DOCS.iterdir()}
    assert committed == rendered


@pytest.mark.parametrize("name", sorted(slack_examples.REGISTRY))
def test_every_example_is_valid_and_linked(name: str) -> None:
    """Each example passes Slack's rules, and its Builder link decodes to its blocks."""
    payload = slack_examples.REGISTRY[name]()
    errors = view_errors(payload) if payload.get("type") == "home" else message_errors(payload)
    assert errors == []
    link = slack_examples.builder_link(payload)
    assert link.startswith("https://app.slack.com/block-kit-builder/#")
    decoded = json.loads(unquote(link.split("#", 1)[1]))
    assert decoded["blocks"] == payload["blocks"]


def test_the_script_writes_every_file(tmp_path: Path) -> None:
    """The command writes one JSON per example and the README, with one link each."""
    assert slack_examples.main(["--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"{n}.json" for n in slack_examples.REGISTRY} | {"README.md"}
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert readme.count("https://app.slack.com/block-kit-builder/#") == len(slack_examples.REGISTRY)


def test_a_repeated_example_name_is_refused() -> None:
    """Registries merged from several modules may not shadow one another."""
    with pytest.raises(ValueError, match="home_empty"):
        slack_examples.registry({"home_empty": slack_examples.home_empty})
