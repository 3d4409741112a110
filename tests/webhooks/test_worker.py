"""The dispatcher inside real ``glider-relay worker`` processes: SIGKILL loses no delivery."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests import ROOT
from tests.fixtures.dispatch import delivery_in, event, eventually, publish
from tests.fixtures.webhooks import Receiver, hang, sequence, status

CLI = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
FAST = ["--only", "dispatcher", "--claim-idle-ms", "1000", "--lease-ms", "1000"]


class Worker:
    """A ``glider-relay worker`` child process and the messages it logged."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.messages: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            try:
                self.messages.append(str(json.loads(raw).get("message")))
            except ValueError:
                self.messages.append(raw.decode(errors="replace"))


Spawn = Callable[[str], Any]


@pytest.fixture
async def spawn(redis_url: str) -> AsyncIterator[Spawn]:
    """Start dispatcher-only workers; any still running are killed after the test."""
    started: list[Worker] = []

    async def start(name: str) -> Worker:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
        env |= {
            "REDIS_URL": redis_url,
            "GLIDER_API_KEY": "gldr_sk_test_unused",
            "RELAY_ALLOW_PRIVATE_URLS": "true",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLI,
            "worker",
            "--name",
            name,
            *FAST,
            env=env,
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = Worker(proc)
        started.append(worker)
        await eventually(lambda: "worker started" in worker.messages, within=20)
        return worker

    yield start
    for worker in started:
        if worker.proc.returncode is None:
            worker.proc.kill()
        await worker.proc.wait()
        await worker.reader


async def test_sigkilled_workers_delivery_is_sent_by_another(
    real_redis: aioredis.Redis, receiver: Receiver, spawn: Spawn
) -> None:
    """A worker killed mid-request loses nothing: its lease ends and another worker delivers."""
    release = asyncio.Event()
    url = receiver.on("/hook", sequence(hang(release), status(200)))
    await SubscriptionStore(real_redis).create(SubscriptionCreate(url=url, events=["*"]))
    doomed: Worker = await spawn("w-doomed")
    try:
        await publish(real_redis, event())
        [first] = await receiver.wait_for("/hook")
        doomed.proc.send_signal(signal.SIGKILL)
        await doomed.proc.wait()
        rescuer: Worker = await spawn("w-rescuer")
        requests = await receiver.wait_for("/hook", 2)
        [done] = await delivery_in(real_redis, DeliveryStatus.SUCCEEDED)
    finally:
        release.set()
    assert requests[1].headers["webhook-id"] == first.headers["webhook-id"] == done.webhookId
    rescuer.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(rescuer.proc.wait(), timeout=10) == 0
    await eventually(lambda: "worker stopped" in rescuer.messages)
