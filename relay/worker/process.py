"""``glider-relay worker``: the executor, poller, notifier and dispatcher in one asyncio process.

Any number of workers, on any number of machines, share the work through Redis
alone. SIGTERM or SIGINT: stop taking work, let in-flight work finish within the
grace time, hand back the rest (made claimable at once), exit 0 within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence

import redis.asyncio as aioredis

from relay import tracing
from relay.core.poll_policy import PollPolicy
from relay.listen import ListenFailed
from relay.logs import configure_logging
from relay.metrics import metrics_server
from relay.settings import ConfigError, Settings, load_settings
from relay.startup import check_glider_key, warn_unset
from relay.store.connection import connect_worker
from relay.store.health import StoreMonitor, StoreRefused, refuse_evicting, wait_for_redis
from relay.store.streams import consumer_name
from relay.worker.health import WorkerHealth
from relay.worker.registry import COMPONENTS, Component, Tuning, WorkerContext

log = logging.getLogger(__name__)

# The components that talk to Glider (and so need GLIDER_API_KEY).
GLIDER_CALLERS = frozenset({"executor", "poller"})


class WorkerFailed(Exception):
    """A component ended on its own (it crashed); the worker stopped the rest."""


def parse_only(value: str | None) -> list[str]:
    """``executor,poller`` -> the names, checked against the registry; None -> all of them."""
    if not value:
        return list(COMPONENTS)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown or not names:
        known = ", ".join(COMPONENTS)
        raise argparse.ArgumentTypeError(f"unknown component {unknown or value!r}; known: {known}")
    return names


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    only: Sequence[str] | None = None,
    name: str | None = None,
    tuning: Tuning | None = None,
    redis: aioredis.Redis | None = None,
) -> None:
    """Run the chosen components until ``stop`` is set.

    Waits for Redis first (``/healthz`` answers meanwhile, ``/readyz`` says 503).
    Raises :class:`StoreRefused` on an evicting ``maxmemory-policy`` that settings do
    not accept, and :class:`WorkerFailed` (after stopping the others) when a
    component ended by itself.
    """
    client = redis or connect_worker(settings.redis_url)
    monitor = StoreMonitor(client, allow_evicting=settings.relay_allow_evicting_redis)
    health = WorkerHealth(monitor)
    try:
        async with metrics_server(
            settings.worker_metrics_port, routes=health.add_routes
        ) as address:
            if not await _store_ready(client, settings, stop):
                return
            ctx = WorkerContext(
                client, settings, consumer=consumer_name(name), tuning=tuning or Tuning()
            )
            watching = asyncio.create_task(monitor.run(stop, every_s=ctx.tuning.store_check_s))
            try:
                await _run_components(ctx, list(only or COMPONENTS), stop, health, address)
            finally:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
    finally:
        if redis is None:
            await client.aclose()


async def _run_components(
    ctx: WorkerContext,
    names: list[str],
    stop: asyncio.Event,
    health: WorkerHealth,
    metrics_address: str | None,
) -> None:
    components: list[Component] = [await COMPONENTS[n](ctx) for n in names]
    health.readers = [reader for c in components for reader in c.readers]
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(c.run(), name=n) for n, c in zip(names, components, strict=True)
    ]
    stopping = asyncio.create_task(stop.wait())
    checking = _check_key(ctx, names)
    failed: list[str] = []
    try:
        health.started = True
        log.info(
            "worker started",
            extra={"consumer": ctx.consumer, "components": names, "metrics": metrics_address},
        )
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stopping}:
            failed.append(task.get_name())
            log.error(
                "%s ended unexpectedly; stopping the worker",
                task.get_name(),
                exc_info=task.exception(),
            )
        health.started = False
        await _wind_down(components, tasks, ctx.tuning.grace_s)
    finally:
        stopping.cancel()
        if checking is not None:
            checking.cancel()
            await asyncio.gather(checking, return_exceptions=True)
        for component in components:
            if component.close is not None:
                await component.close()
        await ctx.close()
    log.info("worker stopped", extra={"consumer": ctx.consumer})
    if failed:
        raise WorkerFailed(", ".join(failed))


async def _store_ready(client: aioredis.Redis, settings: Settings, stop: asyncio.Event) -> bool:
    """Wait for Redis and check its eviction policy; False when stopped while waiting."""
    if not await wait_for_redis(client, stop, process="worker"):
        return False
    if settings.redis_url is not None:  # the embedded store has no policy to read
        await refuse_evicting(client, allow=settings.relay_allow_evicting_redis, process="worker")
    return True


def _check_key(ctx: WorkerContext, names: Sequence[str]) -> asyncio.Task[None] | None:
    """Ask Glider about the key in the background: a slow or failed answer delays nothing."""
    if ctx.settings.glider_api_key is None or not GLIDER_CALLERS.intersection(names):
        return None
    return asyncio.create_task(check_glider_key(ctx.glider()), name="whoami")


async def _wind_down(
    components: list[Component], tasks: list[asyncio.Task[None]], grace_s: float
) -> None:
    """Ask every component to stop; whatever outlives the grace (plus a margin) is cancelled."""
    for component in components:
        component.stop()
    _, late = await asyncio.wait(tasks, timeout=grace_s + 1.5)
    for task in late:
        log.warning("%s did not stop in time; cancelling it", task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _tuning(args: argparse.Namespace) -> Tuning:
    defaults = Tuning()
    poll = defaults.poll
    if args.poll_first_s:
        poll = PollPolicy(first_s=args.poll_first_s, min_s=args.poll_first_s)
    return Tuning(
        claim_idle_ms=args.claim_idle_ms or defaults.claim_idle_ms,
        lease_ms=args.lease_ms or defaults.lease_ms,
        grace_s=defaults.grace_s if args.grace_s is None else args.grace_s,
        poll=poll,
        webhook_delays_s=args.webhook_delays_s or defaults.webhook_delays_s,
        unsure_deadline_s=args.unsure_deadline_s or defaults.unsure_deadline_s,
    )


def parse_delays(value: str) -> tuple[float, ...]:
    """``0,0.5,30`` -> (0.0, 0.5, 30.0): a webhook retry schedule in seconds."""
    try:
        delays = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {value!r}") from None
    if any(delay < 0 for delay in delays):
        raise argparse.ArgumentTypeError(f"delays cannot be negative: {value!r}")
    return delays


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a long-running server (measured: bench/relay.py).

    Start-up objects (modules, pydantic schemas) never become garbage, so they are
    frozen out of full collections; and young collections run less often, since what
    is young here is mostly requests in flight, not garbage. Refcounting frees the rest.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def run(args: argparse.Namespace) -> int:
    """Entry point: check the configuration, then serve until SIGTERM/SIGINT; 0 on a clean stop."""
    try:
        calls_glider = bool(GLIDER_CALLERS.intersection(args.only or COMPONENTS))
        settings = load_settings().require("worker", calls_glider=calls_glider)
    except ConfigError as exc:
        print(f"glider-relay worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets=settings.secret_values())
    warn_unset(settings, "worker")
    tune_gc()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop, only=args.only, name=args.name, tuning=_tuning(args))

    try:
        with tracing.exporting(settings, "worker"):
            asyncio.run(main())
    except WorkerFailed:
        return 1  # non-zero, so that a supervisor restarts the worker
    except (StoreRefused, ListenFailed) as exc:
        print(f"glider-relay worker: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``glider-relay worker``."""
    parser = subparsers.add_parser(
        "worker", help="executor, poller, notifier and dispatcher (any number, anywhere)"
    )
    parser.add_argument(
        "--only",
        type=parse_only,
        default=None,
        help=f"comma-separated subset of: {', '.join(COMPONENTS)} (default: all)",
    )
    parser.add_argument("--name", help="stable consumer name (default hostname:pid)")
    # Hidden: shrink the crash-recovery timings (tests and demos), never needed in production.
    for flag in ("--claim-idle-ms", "--lease-ms"):
        parser.add_argument(flag, type=int, default=None, help=argparse.SUPPRESS)
    for flag in ("--poll-first-s", "--grace-s", "--unsure-deadline-s"):
        parser.add_argument(flag, type=float, default=None, help=argparse.SUPPRESS)
    # Hidden: compress the webhook retry schedule (hours of retries in seconds, for tests).
    parser.add_argument(
        "--webhook-delays-s", type=parse_delays, default=None, help=argparse.SUPPRESS
    )
    parser.set_defaults(func=run)
