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
import os
import signal
import sys
from asyncio import FIRST_COMPLETED
from collections.abc import Sequence

import redis.asyncio as aioredis

from relay import metrics, tracing
from relay.core.backoff import backoff_delay
from relay.core.poll_policy import PollPolicy
from relay.listen import ListenFailed
from relay.logs import configure_logging
from relay.metrics import metrics_server
from relay.settings import ConfigError, Settings, load_settings, policy_at_start
from relay.startup import check_glider_key, warn_unset
from relay.store.connection import connect_worker
from relay.store.faults import REDIS_FAULTS, describe
from relay.store.health import (
    CHECK_TIMEOUT_S,
    StoreMonitor,
    StoreRefused,
    refuse_evicting,
    wait_for_redis,
)
from relay.store.streams import consumer_name
from relay.worker.health import WorkerHealth
from relay.worker.registry import COMPONENTS, Component, Tuning, WorkerContext

log = logging.getLogger(__name__)

# The components that talk to Glider (and so need GLIDER_API_KEY).
GLIDER_CALLERS = frozenset({"executor", "poller"})
EXIT_DEADLINE_S = 9.5  # SIGTERM to exit, however Redis behaves: the contract's 10 s, less a margin


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
            finished = asyncio.Event()
            every_s = ctx.tuning.store_check_s
            watching = asyncio.create_task(monitor.run(finished, every_s=every_s))
            try:
                await _run_components(ctx, list(only or COMPONENTS), stop, health, address)
            finally:
                # Told, not cancelled: a check in progress ends within its own timeout
                # (a cancel can be lost inside a client, fakeredis's, and hang the exit).
                finished.set()
                await asyncio.wait([watching], timeout=3 * CHECK_TIMEOUT_S)
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
    components = {n: await COMPONENTS[n](ctx) for n in names}
    health.readers = [reader for c in components.values() for reader in c.readers]
    tasks = {n: asyncio.create_task(c.run(), name=n) for n, c in components.items()}
    stopping = asyncio.create_task(stop.wait())
    checking = _check_key(ctx, names)
    failed: list[str] = []
    try:
        health.started = True
        log.info(
            "worker started",
            extra={"consumer": ctx.consumer, "components": names, "metrics": metrics_address},
        )
        failed = await _supervise(components, tasks, stopping)
        health.started = False
        await _wind_down(list(components.values()), list(tasks.values()), ctx.tuning.grace_s)
    finally:
        stopping.cancel()
        if checking is not None:
            checking.cancel()
            await asyncio.gather(checking, return_exceptions=True)
        for component in components.values():
            if component.close is not None:
                await component.close()
        await ctx.close()
    log.info("worker stopped", extra={"consumer": ctx.consumer})
    if failed:
        raise WorkerFailed(", ".join(failed))


async def _supervise(
    components: dict[str, Component],
    tasks: dict[str, asyncio.Task[None]],
    stopping: asyncio.Task[bool],
) -> list[str]:
    """Wait for stop; the names of components that ended on their own (a bug: the worker
    stops). One that ended on a Redis error is not a bug (every loop waits those out; this
    is the net under them): it runs again after a backoff, and the worker stays up."""
    restarts: dict[str, int] = dict.fromkeys(components, 0)
    while True:
        done, _ = await asyncio.wait([stopping, *tasks.values()], return_when=FIRST_COMPLETED)
        if stopping in done:
            return []
        failed = []
        for task in done:
            name = task.get_name()
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, REDIS_FAULTS):
                restarts[name] += 1
                metrics.REDIS_ERRORS.labels(loop=name, error=type(exc).__name__).inc()
                delay = backoff_delay(restarts[name], cap=10.0)
                log.error(
                    "%s ended on a Redis error (%s); running it again in %.1f s",
                    name,
                    describe(exc),
                    delay,
                )
                tasks[name] = asyncio.create_task(_later(delay, components[name]), name=name)
                continue
            failed.append(name)
            log.error("%s ended unexpectedly; stopping the worker", name, exc_info=exc)
        if failed:
            return failed


async def _later(delay: float, component: Component) -> None:
    await asyncio.sleep(delay)
    await component.run()


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


def _exit_late() -> None:
    """The stop outlived its deadline (a Redis that does not answer holds some call): exit
    anyway, as promised. Nothing is lost: what this worker held comes due for the others by
    itself (its polls' leases, its stream entries once idle)."""
    log.error(
        "worker still stopping %.1f s after the signal; exiting now (its work comes due"
        " for other workers by itself)",
        EXIT_DEADLINE_S,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(0)


def run(args: argparse.Namespace) -> int:
    """Entry point: check the configuration, then serve until SIGTERM/SIGINT; 0 on a clean stop."""
    try:
        calls_glider = bool(GLIDER_CALLERS.intersection(args.only or COMPONENTS))
        settings = load_settings().require("worker", calls_glider=calls_glider)
    except ConfigError as exc:
        print(f"glider-relay worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets=settings.secret_values())
    try:
        policy_at_start(settings, "worker")
    except ConfigError as exc:
        print(f"glider-relay worker: {exc}", file=sys.stderr)
        return 2
    warn_unset(settings, "worker")
    tune_gc()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            if not stop.is_set():
                stop.set()
                loop.call_later(EXIT_DEADLINE_S, _exit_late)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
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
