"""Schemathesis against the live admin API: its own OpenAPI document, loaded over HTTP.

The web process's app is served on loopback with the real Redis, seeded with
subscriptions, dead and succeeded deliveries and tracked commands. Every operation
of ``GET /v1/openapi.json`` gets generated cases, valid ones (positive) and
invalid ones (negative), sent with the bearer token; each answer must not be a
5xx and must match the document: its status code, content type and body schema.
Half the cases are aimed at data that exists (seeded ids, reachable subscriber
URLs, known event types) so success answers are checked too, not just 404s and
422s. Subscriber hosts resolve through a table, never through DNS.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
import requests
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.web import create_web_app
from relay.admin.subscriptions import RESOLVER
from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.events import EventError, EventType
from relay.core.ids import new_id
from relay.core.records import RequestState
from relay.settings import load_settings
from relay.store import dead_letters, keys
from relay.store.connection import text
from relay.store.dead_letters import DeadStream
from relay.store.queue import enqueue
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import EVENT_TYPES, DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.dispatch import dispatching, event, eventually, publish
from tests.fixtures.slack import SIGNING_SECRET
from tests.fixtures.webhooks import DNS, Receiver, StaticResolver, status
from tests.fuzz.support import FUZZ, Tally

TOKEN = "schemathesis-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 25}
# Subscriber URLs a create or patch may be aimed at: public (accepted, so drawn more
# often), private or link-local (refused), plain http (refused), unknown host (refused).
URLS = [
    "https://hooks.partner.test/glider",
    "https://hooks.partner.test/other",
    "https://hooks.partner.test/third",
    "https://internal.partner.test/hook",
    "https://metadata.partner.test/",
    "http://hooks.partner.test/plain",
    "https://nowhere.partner.test/",
]
EVENTS = st.one_of(
    st.just(["*"]),
    st.lists(st.sampled_from(sorted(EVENT_TYPES)), min_size=1, max_size=3, unique=True),
)
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class Seeds:
    """Ids that exist, by the path they belong under."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def for_path(self, path: str) -> list[str]:
        for prefix, known in self.ids.items():
            if path.startswith(prefix):
                return known
        return []


async def _seed_webhooks(redis: aioredis.Redis, receiver: Receiver) -> tuple[list[str], list[str]]:
    """Two subscriptions (one answering 200, one 500) and their succeeded and dead deliveries."""
    store = SubscriptionStore(redis)
    ok = await store.create(SubscriptionCreate(url=receiver.url("/ok"), events=["*"]))
    failing = receiver.on("/bad", status(500, "nope"))
    bad = await store.create(SubscriptionCreate(url=failing, events=["*"]))
    deliveries = DeliveryStore(redis)
    failed = EventError(code="GLIDER_FAILED", message="slippage too high")
    async with dispatching(redis):
        await publish(redis, event(), event(EventType.FAILED, error=failed))

        async def settled() -> bool:
            dead, _ = await deliveries.page(status=DeliveryStatus.DEAD, limit=10)
            done, _ = await deliveries.page(status=DeliveryStatus.SUCCEEDED, limit=10)
            return len(dead) == 2 and len(done) == 2

        await eventually(settled)
    every, _ = await deliveries.page(limit=10)
    return [ok.id, bad.id], [d.id for d in every]


async def _seed_commands(redis: aioredis.Redis) -> list[str]:
    """Tracked commands: queued ones of each action, and one that failed at Glider."""
    ids = []
    requester = Requester(team_id="T1", user_id="U1", user_name="alice", channel_id="C1")
    for n, action in enumerate([Action.REBALANCE, Action.PAUSE, Action.RESUME, Action.REBALANCE]):
        command = QueuedCommand(
            request_id=new_id("req"),
            action=action,
            portfolio_id=f"pf_{n}",
            reason="maintenance" if action is Action.PAUSE else None,
            requested_by=requester,
        )
        ids.append((await enqueue(redis, command)).request_id)
    await redis.hset(
        keys.request(ids[-1]),
        mapping={
            "state": RequestState.FAILED.value,
            "operation_id": "rebalance:pf_3",
            "operation_state": "failed",
            "error_code": "GLIDER_FAILED",
            "error_message": "slippage too high",
        },
    )
    return ids


async def _seed_dead_letters(redis: aioredis.Redis, request_ids: list[str]) -> list[str]:
    """Dead letters on both streams, laid out as the workers write them (replay uses them up)."""
    ids = []
    for n in range(30):
        dead: dict[Any, Any] = {
            "request_id": request_ids[n % len(request_ids)],
            "kind": "final",
            "dead_reason": "delivered 6 times (max 5)",
            "dead_deliveries": "6",
        }
        stream = DeadStream.REPLIES if n % 2 else DeadStream.COMMANDS
        ids.append(dead_letters.public_id(stream, text(await redis.xadd(stream.dead_key, dead))))
    return ids


def _aim(case: Case[Any], data: st.DataObject, seeds: Seeds) -> None:
    """Half the time, point the case at data that exists (an id, a reachable URL, real events)."""
    known = seeds.for_path(case.operation.path)
    for name in ("id", "request_id"):
        if name in case.path_parameters and known and data.draw(st.booleans()):
            case.path_parameters[name] = data.draw(st.sampled_from(known))
    body: Any = case.body
    writes = case.operation.path == "/v1/subscriptions" or case.method == "PATCH"
    if writes and isinstance(body, dict) and data.draw(st.booleans()):
        body["url"] = data.draw(st.sampled_from(URLS))
        if "events" in body or case.method == "POST":
            body["events"] = data.draw(EVENTS)


def _run_operation(
    operation: Any, mode: GenerationMode, base_url: str, seeds: Seeds, seen: Tally
) -> None:
    """Generated cases for one operation in one mode, each sent and checked."""
    session = requests.Session()

    @settings(FUZZ, max_examples=EXAMPLES[mode])
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def check(case: Case[Any], data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            _aim(case, data, seeds)
        response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=10)
        seen.add(f"{case.method} {case.operation.path} {response.status_code}")
        case.validate_response(response, checks=CHECKS)

    try:
        check()
    finally:
        session.close()


def _run_all(schema_url: str, base_url: str, seeds: Seeds, seen: Tally) -> None:
    """Every operation of the served document, positive then negative; cases by outcome."""
    schema = schemathesis.openapi.from_url(schema_url, headers=AUTH, timeout=10)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    # Deletes last, so the other routes still find the seeded subscriptions.
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        for mode in EXAMPLES:
            _run_operation(operation, mode, base_url, seeds, seen)


@pytest.fixture
async def admin_server(
    aiohttp_server: AiohttpServer, real_redis: aioredis.Redis, receiver: Receiver
) -> tuple[str, Seeds]:
    """The web app on the real Redis with seeded data, served; its base URL and the seeds."""
    subscriptions, deliveries = await _seed_webhooks(real_redis, receiver)
    commands = await _seed_commands(real_redis)
    dead = await _seed_dead_letters(real_redis, commands)
    settings_ = load_settings(
        redis_url="redis://127.0.0.1:6379/0",  # unused: the app gets the client itself
        slack_signing_secret=SIGNING_SECRET,
        relay_admin_token=TOKEN,
        relay_allow_private_urls=False,
    )
    app = create_web_app(settings_, real_redis)
    app[RESOLVER] = StaticResolver(DNS)
    server = await aiohttp_server(app)
    seeds = Seeds(
        {
            "/v1/subscriptions": subscriptions,
            "/v1/deliveries": deliveries,
            "/v1/operations": commands,
            "/v1/dead-letters": dead,
        }
    )
    return str(server.make_url("")).rstrip("/"), seeds


@pytest.mark.cases(900)
async def test_admin_api_answers_as_its_document_says(
    tally: Tally, admin_server: tuple[str, Seeds]
) -> None:
    """No 5xx; every status, content type and body matches /v1/openapi.json, for every route."""
    base_url, seeds = admin_server
    # Schemathesis sends blocking requests: run it off the loop that serves the app.
    await asyncio.to_thread(_run_all, f"{base_url}/v1/openapi.json", base_url, seeds, tally)
    seen = tally.counts
    per_operation = Counter(outcome.rsplit(" ", 1)[0] for outcome in seen.elements())
    # All 21 documented operations but the document itself, which schemathesis leaves out
    # (it loaded the schema from there; tests/test_openapi.py covers that route).
    assert len(per_operation) == 20
    assert all(count >= 40 for count in per_operation.values()), per_operation
    for expected in (
        "GET /v1/subscriptions 200",
        "GET /v1/deliveries 200",
        "GET /v1/operations 200",
        "POST /v1/subscriptions 201",
        "POST /v1/subscriptions 422",
        "GET /v1/subscriptions/{id} 200",
        "PATCH /v1/subscriptions/{id} 200",
        "DELETE /v1/subscriptions/{id} 204",
        "POST /v1/subscriptions/{id}/rotate-secret 200",
        "GET /v1/deliveries/{id} 200",
        "POST /v1/deliveries/{id}/replay 202",
        "POST /v1/deliveries/{id}/replay 409",
        "POST /v1/deliveries/recover 202",
        "GET /v1/operations/{request_id} 200",
        "GET /v1/operations/{request_id}/timeline 200",
        "GET /v1/dead-letters 200",
        "POST /v1/dead-letters/{id}/replay 202",
        "POST /v1/dead-letters/{id}/replay 404",
        "GET /v1/audit 200",
        "GET /v1/event-types 200",
        "POST /v1/subscriptions/{id}/test 202",
        "POST /v1/subscriptions/{id}/portal-link 201",
        "POST /v1/subscriptions/{id}/portal-link/revoke 204",
    ):
        assert seen[expected], (expected, seen)
