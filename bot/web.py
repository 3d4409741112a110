"""``glider-relay web``: one aiohttp application for Slack, health and the admin API.

``POST /slack/events`` checks the signature and the 5-minute timestamp window over
the raw body (bot/signature.py: 401 otherwise). The bot's own slash commands are then
answered by bot/slash_http.py (Bolt's verifier agreeing, without Bolt's dispatch: the
cheap ack); every other request goes to Bolt through its aiohttp adapter, which verifies
it again.
With ``SLACK_APP_TOKEN`` set, Slack talks to the same Bolt app over Socket Mode
instead, and the HTTP server keeps health and admin routes only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import redis.asyncio as aioredis
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.access import Access
from bot.app import create_bolt_app, require_signing_secret
from bot.background import Background
from bot.bolt_request import bolt_request
from bot.enqueuer import ENQUEUE_BUDGET_S, GroupEnqueuer
from bot.handlers import Commands, post_late
from bot.listing import Lister
from bot.server_limits import GuardedRunner, body_in_time
from bot.settle import OutcomeChecker
from bot.signature import MISMATCH, PROBLEMS, is_ssl_check, signature_problem
from bot.slash_http import SlashCommands, command_form
from bot.status import SLOW_GLIDER_S
from relay import metrics, tracing
from relay.admin.app import create_admin_app
from relay.admin.common import json_errors
from relay.console.app import create_console_app, create_portal_app
from relay.core.policy import Policy
from relay.glider.client import GliderClient
from relay.listen import ListenFailed, start_site
from relay.logs import configure_logging
from relay.metrics import add_metrics_route
from relay.settings import ConfigError, Settings, load_settings, policy_at_start
from relay.slack.client import SlackApi, create_slack_api
from relay.slack.usergroups import GroupResolver
from relay.startup import warn_unset
from relay.store.connection import connect
from relay.store.health import (
    StoreMonitor,
    StoreRefused,
    refuse_evicting,
    wait_for_redis,
)
from relay.store.ratelimit import SharedRateLimiter

log = logging.getLogger(__name__)

# Slack's payloads are a few KiB; anything this big is not from Slack.
MAX_BODY_BYTES = 64 * 1024
DRAIN_GRACE_S = 3.0
SHUTDOWN_TIMEOUT_S = 5.0  # in-flight requests; plus the drain, inside docs/contract.md §2.4's 10 s

BOLT = web.AppKey("bolt", AsyncApp)
BACKGROUND = web.AppKey("background", Background)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE_MONITOR = web.AppKey("store_monitor", StoreMonitor)
SIGNING_SECRET = web.AppKey("slack_signing_secret", bytes)
SLASH = web.AppKey("slash_commands", SlashCommands)


async def slack_events(request: web.Request) -> web.Response:
    headers, body = request.headers, await request.read()
    problem = signature_problem(
        request.app[SIGNING_SECRET],
        body,
        headers.get("X-Slack-Request-Timestamp"),
        headers.get("X-Slack-Signature"),
        now=time.time(),
    )
    if problem is not None and not is_ssl_check(body):
        return _refused(request, 401, problem, PROBLEMS[problem])
    form = command_form(body) if problem is None else None
    if form is not None:  # one of the bot's commands: answered without Bolt's dispatch
        slash = request.app[SLASH]
        if not slash.verified(body, headers):
            return _refused(request, 401, MISMATCH, PROBLEMS[MISMATCH])
        return await slash.answer(request, form)
    try:
        bolt_input = await bolt_request(request)
    except (ValueError, RecursionError):  # signed, yet not text Bolt can parse
        return _refused(request, 400, "unparseable", "signed, but not a payload Slack sends")
    bolt_response = await request.app[BOLT].async_dispatch(bolt_input)
    return await to_aiohttp_response(bolt_response)


def _refused(request: web.Request, status: int, label: str, reason: str) -> web.Response:
    """One WARNING per refused Slack request (never a header's value), counted by reason."""
    metrics.SLACK_REFUSED.labels(reason=label).inc()
    log.warning(
        "refused Slack request: %s",
        reason,
        extra={"status": status, "reason": label, "remote": request.remote},
    )
    return web.json_response({"error": "invalid request"}, status=status)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Redis answers, accepts writes (not OOM) and does not evict keys."""
    status = await request.app[STORE_MONITOR].check()  # logs each change once
    body = {"status": "ok" if status.ready else "unavailable", **status.as_json()}
    return web.json_response(body, status=200 if status.ready else 503)


def _slack_api(settings: Settings) -> SlackApi:
    # Late replies only: a user is waiting, so few retries and short waits.
    return create_slack_api(settings, max_retries=2, max_wait_s=5.0)


def create_web_app(
    settings: Settings,
    redis: aioredis.Redis,
    glider: GliderClient | None = None,
    *,
    status_patience: float = SLOW_GLIDER_S,
    enqueue_budget: float = ENQUEUE_BUDGET_S,
    policy: Policy | None = None,
) -> web.Application:
    """The web process's application; ``glider`` (if any) serves ``/rebalance status``.

    A status lookup slower than ``status_patience`` seconds is answered late; a command
    Redis has not answered within ``enqueue_budget`` seconds is acked as unknown.
    ``policy`` defaults to the settings' (``RELAY_POLICY_FILE``, else ``BOT_ALLOWED_USERS``).
    """
    require_signing_secret(settings)
    background = Background()
    slack = _slack_api(settings)
    commands = Commands(
        settings=settings,
        redis=redis,
        glider=glider,
        slack=slack,
        background=background,
        enqueuer=GroupEnqueuer(redis, budget=enqueue_budget),
        checker=OutcomeChecker(redis, partial(post_late, slack), background),
        access=Access(
            policy or settings.access_policy(),
            # A lookup an ack stopped waiting for finishes in the background (and is
            # drained at shutdown), filling the cache for the next command.
            GroupResolver(slack, spawn=partial(background.spawn, name="usergroups")),
        ),
        status_patience=status_patience,
        lister=Lister(redis, glider),
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors, body_in_time])
    app[BOLT] = create_bolt_app(settings, commands)
    app[BACKGROUND] = background
    app[REDIS] = redis
    app[STORE_MONITOR] = StoreMonitor(redis, allow_evicting=settings.relay_allow_evicting_redis)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_metrics_route(app, redis)
    if not settings.socket_mode and settings.slack_signing_secret is not None:
        secret = settings.slack_signing_secret.get_secret_value()
        app[SIGNING_SECRET] = secret.encode()
        app[SLASH] = SlashCommands(commands, secret)
        app.router.add_post("/slack/events", slack_events)
    app.add_subapp("/v1", create_admin_app(redis, settings))
    app.add_subapp("/console", create_console_app(redis, settings))
    app.add_subapp("/portal", create_portal_app(redis, settings))

    async def drain(app: web.Application) -> None:
        await app[BACKGROUND].drain(DRAIN_GRACE_S)
        await slack.close()

    app.on_cleanup.append(drain)
    return app


def _glider(settings: Settings, redis: aioredis.Redis) -> GliderClient | None:
    if settings.glider_api_key is None:
        return None
    # Status lookups only: short timeout and few retries, the user is waiting; they
    # draw from the same GLIDER_MAX_RPS budget as the workers.
    return GliderClient(
        str(settings.glider_api_url),
        settings.glider_api_key,
        timeout=5.0,
        max_retries=1,
        rate_limiter=SharedRateLimiter(redis, settings.glider_max_rps),
    )


@asynccontextmanager
async def _socket_mode(bolt: AsyncApp, app_token: SecretStr | None) -> AsyncIterator[None]:
    """Slack over Socket Mode while the body runs; connects in the background (the SDK retries)."""
    if app_token is None:
        yield
        return
    handler = AsyncSocketModeHandler(bolt, app_token.get_secret_value())
    connecting = asyncio.create_task(handler.connect_async())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await handler.close_async()  # type: ignore[no-untyped-call]


async def serve(settings: Settings, *, host: str, stop: asyncio.Event) -> None:
    """Run the web process until ``stop`` is set, then shut down gracefully.

    Serves at once (``/readyz`` says 503 until Redis answers) and waits for Redis;
    raises :class:`StoreRefused` on an evicting policy that settings do not accept.
    """
    redis = connect(settings.redis_url)
    glider = _glider(settings, redis)
    app = create_web_app(settings, redis, glider)
    runner = GuardedRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    watching: asyncio.Task[None] | None = None
    try:
        await start_site(runner, host, settings.port, what="web (PORT)")
        if await wait_for_redis(redis, stop, process="web"):
            if settings.redis_url is not None:
                allow = settings.relay_allow_evicting_redis
                await refuse_evicting(redis, allow=allow, process="web")
            watching = asyncio.create_task(app[STORE_MONITOR].run(stop))
            async with _socket_mode(app[BOLT], settings.slack_app_token):
                log.info(
                    "web listening",
                    extra={"address": runner.addresses, "socket_mode": settings.socket_mode},
                )
                await stop.wait()
        log.info("web stopping")
    finally:
        if watching is not None:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        # Stops accepting, lets in-flight requests finish, then runs on_cleanup.
        await runner.cleanup()
        if glider is not None:
            await glider.close()
        await redis.aclose()


def run_web(settings: Settings, *, host: str = "0.0.0.0") -> int:  # noqa: S104 - a server
    """Serve until SIGTERM or SIGINT; exit status 0 after a graceful stop."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, host=host, stop=stop)

    try:
        asyncio.run(main())
    except (StoreRefused, ListenFailed) as exc:
        print(f"glider-relay web: {exc}", file=sys.stderr)
        return 2
    return 0


def _command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings().require("web")
    except ConfigError as exc:
        print(f"glider-relay web: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets=settings.secret_values())
    try:
        policy_at_start(settings, "web")
    except ConfigError as exc:
        print(f"glider-relay web: {exc}", file=sys.stderr)
        return 2
    warn_unset(settings, "web")
    with tracing.exporting(settings, "web"):
        return run_web(settings, host=args.host)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``glider-relay web``."""
    parser = subparsers.add_parser("web", help="Slack endpoint, admin API and health on $PORT")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")  # noqa: S104
    parser.set_defaults(func=_command)
