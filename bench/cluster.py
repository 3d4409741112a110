"""How webhook delivery work spreads over the masters of a three-master Redis Cluster.

A fresh local three-master cluster (tests/fixtures/cluster.py) gets ``--subscriptions``
subscriptions to every event, all pointing at a local receiver that answers 200;
``--events`` events are published and the real dispatcher delivers them all. Each
master's ``INFO commandstats`` is reset before the workload and read after it.

Printed: per master the calls and usec of the workload's commands and its share of
all calls; per command the calls and usec_per_call; Redis CPU (user + sys, from
``INFO cpu``) per delivery on each master and in all; and, as the LAST stdout line,
one JSON object ``{"cluster_delivery_share_max_deviation": x, "summary": "..."}``
where x is the largest |share - 1/3| / (1/3) over the masters (0 is a perfect
spread; 2 is one master doing everything). The baseline is the ideal third.

    python bench/cluster.py [--subscriptions 36] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.store.connection import connect  # noqa: E402
from relay.webhooks.deliveries import DeliveryStore  # noqa: E402
from relay.webhooks.models import DeliveryStatus  # noqa: E402
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore  # noqa: E402
from tests.fixtures.cluster import three_masters  # noqa: E402
from tests.fixtures.dispatch import dispatching, event, publish  # noqa: E402

# Commands of the bench and the cluster client itself, not of the delivery workload.
_NOT_WORKLOAD = ("info", "config", "cluster", "ping", "command", "client", "hello", "readonly")
_DEADLINE_S = 80.0


@dataclass(frozen=True)
class Master:
    port: int
    calls: Counter[str]
    usec: Counter[str]
    cpu_s: float

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _cpu(node: redis.Redis) -> float:
    info: dict[str, Any] = node.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _read(port: int, cpu_before: float) -> Master:
    node = redis.Redis(host="127.0.0.1", port=port)
    stats: dict[str, Any] = node.info("commandstats")
    calls: Counter[str] = Counter()
    usec: Counter[str] = Counter()
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command.split("|")[0] in _NOT_WORKLOAD:
            continue
        calls[command] = int(row["calls"])
        usec[command] = int(row["usec"])
    return Master(port, calls, usec, _cpu(node) - cpu_before)


async def _succeeded(store: DeliveryStore) -> int:
    count, cursor = 0, None
    while True:
        page, cursor = await store.page(status=DeliveryStatus.SUCCEEDED, cursor=cursor, limit=500)
        count += len(page)
        if cursor is None:
            return count


async def _workload(url: str, ports: list[int], subscriptions: int, events: int) -> list[Master]:
    got = asyncio.Event()
    received = 0
    expected = subscriptions * events

    async def handle(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        if received >= expected:
            got.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = connect(url)
    try:
        subs = SubscriptionStore(client)
        for n in range(subscriptions):
            await subs.create(SubscriptionCreate(url=f"{base}/s{n}", events=["*"]))
        nodes = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
        for node in nodes:
            node.config_resetstat()
        cpu_before = [_cpu(node) for node in nodes]
        store = DeliveryStore(client)
        async with dispatching(client, default_cap=8):
            await publish(client, *(event() for _ in range(events)))
            await asyncio.wait_for(got.wait(), _DEADLINE_S)
            deadline = time.monotonic() + _DEADLINE_S
            while await _succeeded(store) < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError("not every delivery was recorded as succeeded")
                await asyncio.sleep(0.05)
        return [_read(port, before) for port, before in zip(ports, cpu_before, strict=True)]
    finally:
        await client.aclose()
        await runner.cleanup()


def _report(masters: list[Master], deliveries: int) -> float:
    total = sum(m.total_calls for m in masters) or 1
    third = 1 / len(masters)
    deviation = 0.0
    print(f"{deliveries} deliveries on {len(masters)} masters")
    for m in masters:
        share = m.total_calls / total
        deviation = max(deviation, abs(share - third) / third)
        print(
            f"master :{m.port}: {m.total_calls} calls, {sum(m.usec.values())} usec,"
            f" share {share:.3f}, cpu {m.cpu_s * 1e6 / deliveries:.1f} usec/delivery"
        )
    calls: Counter[str] = Counter()
    usec: Counter[str] = Counter()
    for m in masters:
        calls.update(m.calls)
        usec.update(m.usec)
    print("command             calls  calls/delivery  usec_per_call")
    for command, n in calls.most_common():
        print(f"{command:<18} {n:>7}  {n / deliveries:>14.2f}  {usec[command] / n:>13.2f}")
    evalsha = usec["evalsha"]
    cpu = sum(m.cpu_s for m in masters)
    print(f"evalsha usec per delivery {evalsha / deliveries:.1f}")
    print(f"redis cpu (user+sys) per delivery {cpu * 1e6 / deliveries:.1f} usec, all masters")
    return deviation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscriptions", type=int, default=36)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    with three_masters() as ports:
        url = f"redis+cluster://127.0.0.1:{ports[0]}"
        masters = asyncio.run(_workload(url, ports, args.subscriptions, args.events))
    deliveries = args.subscriptions * args.events
    deviation = _report(masters, deliveries)
    total = sum(m.total_calls for m in masters) or 1
    shares = "/".join(f"{m.total_calls / total:.2f}" for m in masters)
    summary = (
        f"{args.subscriptions} subscriptions x {args.events} events on 3 masters:"
        f" delivery command shares {shares} (ideal 0.33 each),"
        f" max deviation {deviation:.2f} (target <= 0.20)"
    )
    print(
        json.dumps(
            {"cluster_delivery_share_max_deviation": round(deviation, 3), "summary": summary}
        )
    )


if __name__ == "__main__":
    main()
