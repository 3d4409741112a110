"""The ``glider-relay`` console script: one sub-command per process (SPEC section 2).

Each sub-command module exposes ``add_parser(subparsers)``, which registers its
arguments and sets ``func``: a callable taking the parsed arguments and
returning the exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bot import web
from bot.cli import audit as audit_cli
from bot.cli import webhooks as webhooks_cli
from bot.devtools import demo, dev
from relay.sim import server as sim_server
from relay.worker import process as worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glider-relay", description="Slack bot and webhook relay for Glider"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_server.add_parser(subparsers)
    web.add_parser(subparsers)
    dev.add_parser(subparsers)
    demo.add_parser(subparsers)
    worker.add_parser(subparsers)
    webhooks_cli.add_subscriptions_parser(subparsers)
    webhooks_cli.add_deliveries_parser(subparsers)
    audit_cli.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
