"""The ``glider-relay`` console script: one sub-command per process (docs/contract.md §2).

Each sub-command module exposes ``add_parser(subparsers)``, which registers its
arguments and sets ``func``: a callable taking the parsed arguments and
returning the exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import get_args

from bot import web
from bot.cli import operations as operations_cli
from bot.cli import webhooks as webhooks_cli
from bot.devtools import demo, dev, slack_send
from relay.settings import Process, env_help
from relay.sim import server as sim_server
from relay.worker import process as worker

# Sub-commands that load settings (their --help lists the environment they read).
_READS_SETTINGS: frozenset[str] = frozenset(get_args(Process)) - {"sim"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the environment epilog's lines, and appends each option's default to its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub-)command parser under ``parser``, with its top-level command name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                top = path or name
                yield top, sub
                yield from _commands(sub, top)


def _explain(parser: argparse.ArgumentParser) -> None:
    """Defaults in every sub-command's help, and the environment variables it reads."""
    for top, sub in _commands(parser):
        sub.formatter_class = HelpFormatter
        if top in _READS_SETTINGS:
            sub.epilog = env_help(top)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glider-relay", description="Slack bot and webhook relay for Glider"
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('glider-relay')}"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_server.add_parser(subparsers)
    web.add_parser(subparsers)
    dev.add_parser(subparsers)
    demo.add_parser(subparsers)
    worker.add_parser(subparsers)
    webhooks_cli.add_subscriptions_parser(subparsers)
    webhooks_cli.add_deliveries_parser(subparsers)
    operations_cli.add_operations_parser(subparsers)
    operations_cli.add_dead_letters_parser(subparsers)
    slack_send.add_parser(subparsers)
    _explain(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
