"""``glider-relay worker`` as real processes on real Redis against the Glider simulator:
SIGKILL loses nothing, SIGTERM exits 0 in time, workers share GLIDER_MAX_RPS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from relay.core import transitions
from relay.core.clock import utc_now
from relay.core.commands import Action
from relay.core.records import RequestState
from relay.glider import GliderClient
from relay.sim.config import ADMIN_KEY, PF_MAIN, PF_SHORT, PF_ULID, SimConfig, SimPortfolio
from relay.sim.server import SimServer, start_sim
from relay.store import keys, outcomes
from relay.webhooks.oncall import SLACK_TARGET
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests import ROOT
from tests.fixtures.slack import BOT_TOKEN, FakeSlack
from tests.fixtures.webhooks import Receiver
from tests.fixtures.worker import (
    eventually,
    pending_rows,
    queue_command,
    request_record,
    take_command,
)

CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
PF_FAILS = "pf_always_fails"
FAST = ["--claim-idle-ms", "1500", "--lease-ms", "1500", "--poll-first-s", "0.2"]


class TimedJournal(list[Any]):
    """The simulator's request journal, remembering when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)


@dataclass
class WorkerProcess:
    """A running worker and its JSON log lines."""

    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            try:
                self.lines.append(json.loads(raw))
            except ValueError:
                self.lines.append({"message": raw.decode(errors="replace")})

    def logged(self, message: str) -> bool:
        return any(line.get("message") == message for line in self.lines)


Spawn = Callable[..., Any]


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A simulator on the real clock: operations really take 0.5 s."""
    portfolios = [SimPortfolio(id=f"pf_load_{n}", tenant="acme") for n in range(30)]
    portfolios.append(SimPortfolio(id=PF_FAILS, tenant="acme", outcome="failed"))
    base = SimConfig.default()
    config = base.with_overrides(
        op_duration_s=0.5, cooldown_s=0, portfolios=(*base.portfolios, *portfolios)
    )
    server = await start_sim(config, clock=utc_now)
    yield server
    await server.stop()


@pytest.fixture
async def spawn(redis_url: str, sim: SimServer) -> AsyncIterator[Spawn]:
    """Start ``glider-relay worker`` processes; any left running are killed after the test."""
    started: list[WorkerProcess] = []

    async def start(
        *args: str, max_rps: float = 50, env_extra: dict[str, str] | None = None
    ) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
        env |= {
            "REDIS_URL": redis_url,
            "GLIDER_API_URL": sim.url,
            "GLIDER_API_KEY": ADMIN_KEY,
            "GLIDER_MAX_RPS": str(max_rps),
        }
        env |= env_extra or {}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLI,
            "worker",
            *args,
            env=env,
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = WorkerProcess(proc)
        worker.reader = asyncio.create_task(worker.read())
        started.append(worker)
        await eventually(lambda: worker.logged("worker started"), within=20)
        return worker

    yield start
    for worker in started:
        if worker.proc.returncode is None:
            worker.proc.kill()
        await worker.proc.wait()
        if worker.reader is not None:
            await worker.reader


async def test_sigterm_exits_0_within_10_seconds(spawn: Spawn) -> None:
    """SIGTERM: the worker stops reading, winds down and exits 0 in docs/contract.md §2.4's 10 s."""
    worker: WorkerProcess = await spawn("--name", "w-term")
    worker.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(worker.proc.wait(), timeout=10) == 0
    assert worker.reader is not None
    await asyncio.wait_for(worker.reader, timeout=5)
    assert worker.logged("worker stopped")


async def test_sigterm_hands_back_unfinished_work_to_the_next_worker(
    real_redis: aioredis.Redis, sim: SimServer, spawn: Spawn
) -> None:
    """A command still waiting on Glider at SIGTERM is handed back, the worker exits 0,
    and the next worker takes it over at once (not after the claim timeout)."""
    sim.context.chaos.latency_s = 60
    first: WorkerProcess = await spawn(
        "--name", "w-leaving", "--only", "executor", "--claim-idle-ms", "60000", "--grace-s", "0.5"
    )
    pause = await queue_command(real_redis, Action.PAUSE, PF_ULID)

    async def held() -> bool:
        rows = await pending_rows(real_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP)
        return [row["consumer"] for row in rows] == ["w-leaving"]

    await eventually(held)
    first.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(first.proc.wait(), timeout=10) == 0
    [row] = await pending_rows(real_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP)
    assert row["time_since_delivered"] >= 60_000
    sim.context.chaos.latency_s = 0
    await spawn("--name", "w-next", "--only", "executor", "--claim-idle-ms", "60000")

    async def paused() -> bool:
        record = await request_record(real_redis, pause.request_id)
        return record.state is RequestState.PAUSED

    await eventually(paused, within=20)


async def test_sigkilled_workers_commands_and_leases_are_finished_by_another(
    real_redis: aioredis.Redis, sim: SimServer, spawn: Spawn
) -> None:
    """kill -9 while holding a command (its POST hanging) and a leased operation (its GET
    hanging): a second worker finishes both, and the rebalance is still one operation."""
    first: WorkerProcess = await spawn("--name", "w-doomed", "--only", "executor,poller", *FAST)
    rebalance = await queue_command(real_redis, Action.REBALANCE, PF_MAIN)

    async def submitted() -> bool:
        record = await request_record(real_redis, rebalance.request_id)
        return record.state is RequestState.SUBMITTED

    await eventually(submitted)
    sim.context.chaos.latency_s = 60  # from now on every answer hangs
    pause = await queue_command(real_redis, Action.PAUSE, PF_ULID)

    async def holding_both() -> bool:
        pending = await pending_rows(real_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP)
        due_ms = await real_redis.zscore(keys.POLL_DUE, rebalance.request_id)
        leased = due_ms is not None and due_ms > time.time() * 1000 + 500
        return leased and [row["consumer"] for row in pending] == ["w-doomed"]

    await eventually(holding_both)
    first.proc.kill()
    await first.proc.wait()
    sim.context.chaos.latency_s = 0
    rescuer: WorkerProcess = await spawn("--name", "w-rescuer", "--only", "executor,poller", *FAST)

    async def both_final() -> bool:
        records = [await request_record(real_redis, c.request_id) for c in (rebalance, pause)]
        return all(r.state.is_final for r in records)

    await eventually(both_final, within=30)
    assert (await request_record(real_redis, rebalance.request_id)).state is RequestState.COMPLETED
    assert (await request_record(real_redis, pause.request_id)).state is RequestState.PAUSED
    assert len(sim.context.state.operations(PF_MAIN)) == 1
    assert await pending_rows(real_redis, keys.COMMAND_STREAM, keys.COMMANDS_GROUP) == []
    assert await real_redis.zcard(keys.POLL_DUE) == 0
    assert rescuer.logged(f"claimed 1 idle {keys.COMMAND_STREAM} entries")


async def test_two_workers_together_respect_glider_max_rps(
    real_redis: aioredis.Redis, sim: SimServer, spawn: Spawn
) -> None:
    """30 operations due at once, two pollers: the simulator never sees more than
    GLIDER_MAX_RPS requests in any one-second window."""
    async with sim_client(sim) as glider:
        for n in range(30):
            command = await queue_command(real_redis, Action.REBALANCE, f"pf_load_{n}")
            delivery = await take_command(real_redis)
            accepted = await glider.trigger_rebalance(command.portfolio_id)
            record = await request_record(real_redis, command.request_id)
            now = utc_now()
            plan = transitions.submitted(record, now, accepted.operation_id, now, now)
            await outcomes.apply(real_redis, plan, ack=delivery)
    sim.context.chaos.journal = journal = TimedJournal()
    for name in ("w-a", "w-b"):
        await spawn("--name", name, "--only", "poller", *FAST, max_rps=5)
    await eventually(lambda: len(journal) >= 25, within=30)
    times = sorted(journal.times)
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 5 + 1  # +1: a request's network delay may push it across a boundary


def sim_client(sim: SimServer) -> GliderClient:
    return GliderClient(sim.url, SecretStr(ADMIN_KEY))


async def test_missing_glider_key_exits_2_naming_it(redis_url: str) -> None:
    """A worker without GLIDER_API_KEY refuses to start with one line that names it."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        "worker",
        env={**env, "REDIS_URL": redis_url},
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert "GLIDER_API_KEY" in err.decode()
    assert err.decode().strip().count("\n") == 0


def _lines(worker: WorkerProcess, message: str, **match: str) -> list[dict[str, Any]]:
    return [
        line
        for line in worker.lines
        if line.get("message") == message and all(line.get(k) == v for k, v in match.items())
    ]


async def test_each_outcome_is_one_info_line_with_its_ids(
    spawn: Spawn, real_redis: aioredis.Redis, fake_slack: FakeSlack, receiver: Receiver
) -> None:
    """A completed and a failed rebalance and a pause: one INFO line per outcome, reply, webhook
    delivery and on-call alert, each with the ids it concerns, and none of them twice."""
    subscription = await SubscriptionStore(real_redis).create(
        SubscriptionCreate(url=receiver.url("/ok"), events=["rebalance.completed"])
    )
    worker: WorkerProcess = await spawn(
        "--name",
        "w-logs",
        *FAST,
        env_extra={
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": fake_slack.api_url,
            "ONCALL_SLACK_CHANNEL": "C0ONCALL",
            "RELAY_ALLOW_PRIVATE_URLS": "true",
            "LOG_LEVEL": "INFO",
        },
    )
    done = await queue_command(real_redis, Action.REBALANCE, PF_MAIN)
    fails = await queue_command(real_redis, Action.REBALANCE, PF_FAILS)
    pause = await queue_command(real_redis, Action.PAUSE, PF_SHORT)

    def told_everyone() -> bool:
        replies = {line.get("request_id") for line in _lines(worker, "reply sent")}
        return {done.request_id, fails.request_id, pause.request_id} <= replies and bool(
            _lines(worker, "alert sent") and _lines(worker, "webhook delivered")
        )

    await eventually(told_everyone, within=30)
    [completed] = _lines(worker, "request completed", request_id=done.request_id)
    assert completed["level"] == "INFO"
    assert completed["portfolio_id"] == PF_MAIN
    assert completed["operation_id"]
    [failed] = _lines(worker, "request failed", request_id=fails.request_id)
    assert failed["portfolio_id"] == PF_FAILS
    assert failed["error_code"]
    assert len(_lines(worker, "request paused", request_id=pause.request_id)) == 1
    for request in (done, fails, pause):
        assert len(_lines(worker, "reply sent", request_id=request.request_id)) == 1
    [delivered] = _lines(worker, "webhook delivered", subscription_id=subscription.id)
    assert delivered["request_id"] == done.request_id
    assert delivered["operation_id"] == completed["operation_id"]
    [alert] = _lines(worker, "alert sent")
    assert alert["event_type"] == "rebalance.failed"
    assert alert["subscription_id"] == SLACK_TARGET  # the on-call target


async def test_a_busy_metrics_port_is_one_line(redis_url: str) -> None:
    """WORKER_METRICS_PORT in use: one line naming it, exit 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
        env |= {
            "REDIS_URL": redis_url,
            "GLIDER_API_KEY": ADMIN_KEY,
            "WORKER_METRICS_PORT": str(taken.getsockname()[1]),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLI, "worker", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    # Besides the start-up warnings about unset optional settings (JSON log lines):
    [line] = [ln for ln in err.decode().splitlines() if not ln.startswith("{")]
    assert "Traceback" not in err.decode()
    assert "WORKER_METRICS_PORT" in line
    assert "Address already in use" in line
