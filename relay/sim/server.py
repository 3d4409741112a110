"""Run the simulator: in-process (:func:`start_sim`, :func:`serve`) or as ``glider-relay sim``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relay.core.clock import Clock, utc_now
from relay.listen import ListenFailed, start_site
from relay.sim.app import SIM, SimContext, create_app
from relay.sim.config import SimConfig

DEFAULT_PORT = 8090


@dataclass
class SimServer:
    """A simulator listening on ``url``; ``context`` holds its state, faults and journal."""

    url: str
    context: SimContext
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_sim(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, *, clock: Clock = utc_now
) -> SimServer:
    """Listen on ``host:port`` (0 = any free port) and return at once."""
    app = create_app(config, clock)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await start_site(runner, host, port, what="Glider simulator")
    except ListenFailed:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return SimServer(f"http://{bound_host}:{bound_port}", app[SIM], runner)


async def serve(
    config: SimConfig,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Print the banner and serve until ``stop`` is set (or the task is cancelled)."""
    sim = await start_sim(config, host, port)
    print(banner(sim.url, config), flush=True)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await sim.stop()


def banner(url: str, config: SimConfig) -> str:
    """One line: where it listens and which keys open it (simulator keys are not secrets)."""
    keys = ", ".join(f"{k.key} ({k.tenant}: {' '.join(sorted(k.scopes))})" for k in config.api_keys)
    return f"Glider simulator listening on {url}/v2 - keys: {keys or 'none'}"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sim`` on an ``argparse`` sub-parser set; it runs via ``args.func(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="run a local Glider v2 API simulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    add_fault_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The seed and fault flags :func:`config_from_args` reads (``sim`` and ``dev`` share them)."""
    parser.add_argument(
        "--seed-file",
        help="JSON seed shaped like SimConfig (default: built-in keys and portfolios)",
    )
    parser.add_argument(
        "--op-duration", type=float, help="seconds an operation takes (default: the seed's)"
    )
    parser.add_argument(
        "--failure-rate",
        type=float,
        help="share of operations that fail, 0-1 (default: the seed's)",
    )
    parser.add_argument(
        "--cooldown", type=float, help="seconds between manual rebalances (default: the seed's)"
    )
    parser.add_argument(
        "--error-rate", type=float, help="share of requests answered 5xx, 0-1 (default: the seed's)"
    )
    parser.add_argument(
        "--latency-ms", type=int, help="milliseconds before every answer (default: the seed's)"
    )
    parser.add_argument(
        "--legacy-fields",
        action="store_true",
        help="answer with older field names (default: current ones)",
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The seed file (or the default) with the command-line flags applied on top."""
    config = SimConfig.load(args.seed_file) if args.seed_file else SimConfig.default()
    flags = {
        "op_duration_s": args.op_duration,
        "failure_rate": args.failure_rate,
        "cooldown_s": args.cooldown,
        "error_rate": args.error_rate,
        "latency_ms": args.latency_ms,
        "legacy_fields": args.legacy_fields or None,
    }
    return config.with_overrides(**{k: v for k, v in flags.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    """Entry point of ``glider-relay sim``: serve until SIGINT/SIGTERM, then exit 0."""
    config = config_from_args(args)
    try:
        asyncio.run(_serve_until_signalled(config, args.host, args.port))
    except ListenFailed as exc:
        print(f"glider-relay sim: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve_until_signalled(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, host, port, stop=stop)
