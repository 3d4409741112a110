"""``glider-relay --version`` and every sub-command's ``--help`` (docs/contract.md §2)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata

import pytest

from bot.cli.main import build_parser
from relay.settings import Settings

CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *argv], capture_output=True, text=True, timeout=30, check=False
    )


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*path, name))
                found.extend(_commands(sub, (*path, name)))
    return found


def _parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def test_version_is_the_package_version() -> None:
    """``glider-relay --version`` prints the installed distribution's version."""
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"glider-relay {metadata.version('glider-relay')}"


@pytest.mark.parametrize("path", _commands(build_parser()), ids=" ".join)
def test_every_option_says_what_it_means_and_its_default(path: tuple[str, ...]) -> None:
    """Each argument has a help text; each option's non-empty default is in the help output."""
    parser = _parser(path)
    text = parser.format_help()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(
            action, argparse._HelpAction | argparse._SubParsersAction
        ):
            continue
        assert action.help, (path, action.dest)
        if action.option_strings and action.default not in (None, False):
            assert "default" in text.split(action.option_strings[-1], 1)[1], (path, action.dest)
            assert str(action.default) in text, (path, action.dest)


@pytest.mark.parametrize("command", ["web", "worker", "dev", "subscriptions list", "deliveries"])
def test_help_lists_the_environment_it_reads(command: str) -> None:
    """A real ``--help`` run names every setting, with its default or that it is required."""
    done = _run(*command.split(), "--help")
    assert done.returncode == 0, done.stderr
    env = done.stdout.split("environment variables", 1)[1]
    for name, field in Settings.model_fields.items():
        assert name.upper() in env, (command, name)
        if field.default is not None:
            assert f"{name.upper():<26} default {field.default}" in env
    if command in ("web", "worker"):
        assert f"{'REDIS_URL':<26} required" in env


def test_worker_help_marks_the_glider_key_required() -> None:
    """The worker needs GLIDER_API_KEY; the subscriptions commands do not."""
    assert f"{'GLIDER_API_KEY':<26} required" in _run("worker", "--help").stdout
    assert f"{'GLIDER_API_KEY':<26} unset" in _run("subscriptions", "add", "--help").stdout
