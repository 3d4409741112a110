"""``glider-relay dev``: web, worker and the Glider simulator in one process.

It runs on the embedded in-process store unless ``REDIS_URL`` is set, talks to
the simulator instead of Glider and to a local Slack stand-in instead of Slack,
so it needs no Redis, no Glider key and no Slack workspace. Nothing persists.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from aiohttp import web
from pydantic import AnyHttpUrl, SecretStr

from bot.devtools.slack_standin import LocalSlack, SlackMessage, message_text, start_local_slack
from bot.web import create_web_app
from relay.core.poll_policy import PollPolicy
from relay.glider import GliderClient
from relay.listen import ListenFailed, start_site
from relay.logs import configure_logging
from relay.settings import ConfigError, Settings, load_settings
from relay.sim.config import ADMIN_KEY, SimConfig
from relay.sim.server import SimServer, add_fault_arguments, config_from_args, start_sim
from relay.store.connection import connect
from relay.worker import process as worker
from relay.worker.registry import Tuning

LOCAL_ONCALL_CHANNEL = "C0ONCALL"
# Operations in the simulator take seconds: poll them briskly.
DEV_TUNING = Tuning(poll=PollPolicy(first_s=1.0, min_s=1.0), grace_s=2.0)


@dataclass
class DevStack:
    """Everything ``dev`` runs; :meth:`close` stops it all."""

    settings: Settings
    sim_config: SimConfig
    web_url: str
    sim: SimServer
    slack: LocalSlack
    redis: aioredis.Redis
    stop: asyncio.Event
    worker_task: asyncio.Task[None]
    runners: list[web.AppRunner] = field(default_factory=list)
    glider: GliderClient | None = None

    @property
    def embedded(self) -> bool:
        return self.settings.redis_url is None

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(self.worker_task, return_exceptions=True)
        for runner in reversed(self.runners):
            await runner.cleanup()
        if self.glider is not None:
            await self.glider.close()
        await self.sim.stop()
        await self.redis.aclose()


def _host(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"


def _response_url_hosts(env: Settings, slack: LocalSlack) -> str:
    """The stand-in's host (it serves the response_urls too, on loopback), and only it unless
    SLACK_RESPONSE_URL_HOSTS was set: a real Slack host in a command sent to ``dev`` is then
    never contacted (one warning, and the reply goes to the stand-in as a direct message)
    instead of a storm of failing POSTs to a Slack that dev cannot reach."""
    local = _host(slack.api_url)
    if "slack_response_url_hosts" in env.model_fields_set:
        return f"{env.slack_response_url_hosts},{local}"
    return local


def dev_settings(env: Settings, *, sim_url: str, slack: LocalSlack, port: int) -> Settings:
    """The environment's settings with Glider, Slack and secrets pointed at local stand-ins.

    ``SLACK_SIGNING_SECRET`` and ``RELAY_ADMIN_TOKEN`` are kept when set (so ``slack send``
    and the admin API work with what the shell already has), else made up for the session.
    """
    signing = env.slack_signing_secret or SecretStr(secrets.token_hex(16))
    return env.model_copy(
        update={
            "glider_api_url": AnyHttpUrl(sim_url),
            "glider_api_key": SecretStr(ADMIN_KEY),
            "slack_signing_secret": signing,
            "slack_bot_token": SecretStr("xoxb-local-dev"),
            "slack_app_token": None,
            "slack_api_url": AnyHttpUrl(slack.api_url),
            "slack_response_url_hosts": _response_url_hosts(env, slack),
            "bot_allowed_users": env.bot_allowed_users or "*",
            "oncall_slack_channel": env.oncall_slack_channel or LOCAL_ONCALL_CHANNEL,
            "relay_admin_token": env.relay_admin_token or SecretStr(secrets.token_urlsafe(18)),
            "relay_allow_private_urls": True,
            "port": port,
        }
    )


async def start_stack(
    env: Settings,
    *,
    port: int,
    sim_port: int,
    sim_config: SimConfig | None = None,
    on_message: Callable[[SlackMessage], None] | None = None,
) -> DevStack:
    """Start simulator, Slack stand-in, web and worker on loopback (port 0 = any free one)."""
    sim_config = sim_config or SimConfig.default()
    sim = await start_sim(sim_config, "127.0.0.1", sim_port)
    slack = LocalSlack(on_message=on_message)
    runners = [await start_local_slack(slack)]
    settings = dev_settings(env, sim_url=sim.url, slack=slack, port=port)
    redis = connect(settings.redis_url)
    glider = GliderClient(str(settings.glider_api_url), SecretStr(ADMIN_KEY), max_retries=1)
    web_runner = web.AppRunner(create_web_app(settings, redis, glider), access_log=None)
    await web_runner.setup()
    runners.append(web_runner)
    try:
        await start_site(web_runner, "127.0.0.1", port, what="dev web (--port)")
    except ListenFailed:
        for runner in reversed(runners):
            await runner.cleanup()
        await glider.close()
        await sim.stop()
        await redis.aclose()
        raise
    host, bound = web_runner.addresses[0][:2]
    stop = asyncio.Event()
    # The worker builds its own client (relay.store.connection.connect_worker), as ``worker``
    # does: web's 1 s socket timeout would race its 1 s blocking reads on a real Redis.
    worker_task = asyncio.create_task(
        worker.serve(settings, stop, name="dev", tuning=DEV_TUNING), name="worker"
    )
    web_url = f"http://{host}:{bound}"
    return DevStack(
        settings, sim_config, web_url, sim, slack, redis, stop, worker_task, runners, glider
    )


def _portfolios(config: SimConfig) -> list[str]:
    """The simulator's portfolios the relay's key opens, one line each."""
    tenant = next((k.tenant for k in config.api_keys if k.key == ADMIN_KEY), None)
    return [
        f"                  {p.id}  {p.name or ''} (schedule {p.schedule or 'none'})".rstrip()
        for p in config.portfolios
        if p.tenant == tenant
    ]


def send_hint(stack: DevStack) -> str:
    """The command that sends a signed /rebalance to this ``dev``."""
    first = next((p.id for p in stack.sim_config.portfolios), "pf_x")
    signing = stack.settings.slack_signing_secret
    secret = signing.get_secret_value() if signing else ""
    return (
        f"SLACK_SIGNING_SECRET={secret} glider-relay slack send '/rebalance {first}' "
        f"--url {stack.web_url}"
    )


def without_password(url: str | None) -> str:
    """A Redis URL as the banner shows it: its password (and user) never printed."""
    parts = urlsplit(url or "")
    if parts.password is None and parts.username is None:
        return url or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"***@{host}{port}"))


def banner(stack: DevStack) -> str:
    """What runs where, that nothing persists, how to use a real Redis, and how to drive it."""
    settings = stack.settings
    store = (
        "embedded in-process store (nothing persists; set REDIS_URL=redis://127.0.0.1:6379/0 "
        "to use a real Redis)"
        if stack.embedded
        else f"Redis at {without_password(settings.redis_url)} (the CLI reaches it: "
        "REDIS_URL=... glider-relay operations list)"
    )
    admin = settings.relay_admin_token.get_secret_value() if settings.relay_admin_token else ""
    signing = settings.slack_signing_secret
    signing_text = signing.get_secret_value() if signing else ""
    return "\n".join(
        [
            "glider-relay dev: web, worker and Glider simulator in one process",
            f"  web             {stack.web_url}  (POST /slack/events, /v1/..., /healthz, /metrics)",
            "  worker          executor, poller, notifier, dispatcher, upkeep",
            f"  Glider sim      {stack.sim.url}/v2  (key {ADMIN_KEY})",
            f"  Slack stand-in  {stack.slack.url}  (messages the relay sends are printed below)",
            f"  store           {store}",
            f"  admin token     {admin}   (local dev only)",
            f"  signing secret  {signing_text}   (local dev only)",
            "  portfolios      (the simulator's, open to the relay's key)",
            *_portfolios(stack.sim_config),
            f"  send a command  {send_hint(stack)}",
            "  try it:         glider-relay demo   (a scripted run end to end)",
        ]
    )


def print_message(message: SlackMessage) -> None:
    where = message.channel or "requester"
    print(f"[slack -> {where} via {message.via}] {message_text(message)}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``glider-relay dev``: serve until SIGINT/SIGTERM, exit 0."""
    try:
        env = load_settings()
    except ConfigError as exc:
        print(f"glider-relay dev: {exc}", flush=True)
        return 2
    try:
        sim_config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"glider-relay dev: simulator flags: {str(exc).splitlines()[0]}", flush=True)
        return 2
    configure_logging(args.log_level or env.log_level, secrets=env.secret_values())

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        stack = await start_stack(
            env,
            port=args.port,
            sim_port=args.sim_port,
            sim_config=sim_config,
            on_message=print_message,
        )
        print(banner(stack), flush=True)
        try:
            await stopped.wait()
        finally:
            await stack.close()

    try:
        asyncio.run(main())
    except ListenFailed as exc:
        print(f"glider-relay dev: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``glider-relay dev``."""
    parser = subparsers.add_parser("dev", help="web + worker + Glider simulator in one process")
    parser.add_argument("--port", type=int, default=3000, help="web port (default 3000)")
    parser.add_argument("--sim-port", type=int, default=8090, help="simulator port (default 8090)")
    parser.add_argument(
        "--log-level",
        default=None,
        help="log level of web and worker (default: $LOG_LEVEL, else INFO)",
    )
    add_fault_arguments(parser)  # the simulator's flags, to try the failure paths
    parser.set_defaults(func=run)
