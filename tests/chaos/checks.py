"""What the chaos tests drive and count: commands queued as Slack would, records, events, rates."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from relay.core.commands import Action, QueuedCommand, Requester
from relay.core.events import Event, EventType
from relay.core.ids import new_id
from relay.core.records import RequestRecord, RequestState
from relay.slack.cards import METADATA_TYPE
from relay.store import keys
from relay.store.connection import text_map
from relay.store.queue import EnqueueStatus, enqueue
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.slack import FakeSlack

TERMINAL_EVENTS = frozenset(
    {
        EventType.COMPLETED,
        EventType.FAILED,
        EventType.CANCELLED,
        EventType.REJECTED,
        EventType.PAUSED,
        EventType.RESUMED,
    }
)

# Worker timings shrunk so that a SIGKILLed worker's work is taken over in about 2 s,
# and a rebalance POST in doubt is given up on (unknown_outcome) after 8 s.
FAST_RECOVERY = (
    *("--claim-idle-ms", "1500", "--lease-ms", "1500"),
    *("--poll-first-s", "0.2", "--grace-s", "0.5"),
    *("--unsure-deadline-s", "8"),
)


async def queue(
    redis: aioredis.Redis,
    portfolio_id: str,
    action: Action = Action.REBALANCE,
    *,
    response_base: str | None = None,
) -> str:
    """Accept a command as the Slack side does; its replies go to ``response_base/<request id>``."""
    request_id = new_id("req")
    command = QueuedCommand(
        request_id=request_id,
        action=action,
        portfolio_id=portfolio_id,
        requested_by=Requester(team_id="T1", user_id="U1", user_name="chaos", channel_id="C1"),
        response_url=f"{response_base}/{request_id}" if response_base else None,
        trigger_id=f"trig.{request_id}",
    )
    result = await enqueue(redis, command)
    assert result.status is EnqueueStatus.QUEUED, (portfolio_id, result)
    return request_id


async def subscribe(redis: aioredis.Redis, url: str, events: Iterable[str] = ("*",)) -> str:
    """A webhook subscription (as ``glider-relay subscriptions add`` makes one); its id."""
    store = SubscriptionStore(redis)
    created = await store.create(SubscriptionCreate(url=url, events=list(events)))
    return created.id


async def states(redis: aioredis.Redis, request_ids: Iterable[str]) -> dict[str, str | None]:
    """Each request's recorded state (None when there is no record), in one round trip."""
    ids = list(request_ids)
    pipe = redis.pipeline(transaction=False)
    for request_id in ids:
        pipe.hget(keys.request(request_id), "state")
    found: list[Any] = await pipe.execute()
    return {
        request_id: None if raw is None else raw.decode()
        for request_id, raw in zip(ids, found, strict=True)
    }


async def all_final(redis: aioredis.Redis, request_ids: Iterable[str]) -> bool:
    found = await states(redis, request_ids)
    return all(state is not None and RequestState(state).is_final for state in found.values())


async def records(redis: aioredis.Redis, request_ids: Iterable[str]) -> list[RequestRecord]:
    ids = list(request_ids)
    pipe = redis.pipeline(transaction=False)
    for request_id in ids:
        pipe.hgetall(keys.request(request_id))
    found = await pipe.execute()
    return [
        RequestRecord.from_hash(text_map(raw), request_id)
        for request_id, raw in zip(ids, found, strict=True)
    ]


async def events(redis: aioredis.Redis) -> list[Event]:
    """Every event on the events stream, oldest first."""
    raw: Any = await redis.xrange(keys.EVENTS)
    return [Event.from_stream(text_map(fields)) for _, fields in raw]


def terminal_counts(found: Iterable[Event]) -> Counter[str]:
    """How many terminal events each request got (the guarantee: exactly one)."""
    return Counter(e.data.requestId for e in found if e.type in TERMINAL_EVENTS)


def busiest_second(times: list[float]) -> int:
    """The most requests that fell in any one-second window."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def card_versions(slack: FakeSlack) -> dict[str, list[tuple[int, str]]]:
    """Per request id, the (card version, state) of each job card message Slack took, in
    the order it took them (chat.postMessage then chat.update on its ts)."""
    seen: dict[str, list[tuple[int, str]]] = {}
    for call in slack.calls:
        if call.method not in {"chat.postMessage", "chat.update"} or not call.ok:
            continue
        metadata = call.payload.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_TYPE:
            continue
        body = metadata["event_payload"]
        seen.setdefault(body["request_id"], []).append((int(body["version"]), body["state"]))
    return seen


def cards_not_final(
    slack: FakeSlack, request_ids: Iterable[str]
) -> dict[str, list[tuple[int, str]]]:
    """The requests whose card does not show a final state last, with what Slack took."""
    seen = card_versions(slack)
    return {
        request_id: seen.get(request_id, [])
        for request_id in request_ids
        if request_id not in seen or not RequestState(seen[request_id][-1][1]).is_final
    }


def cards_final(slack: FakeSlack, request_ids: Iterable[str]) -> bool:
    """Every request's card shows a final state last."""
    return not cards_not_final(slack, request_ids)


def assert_cards_in_order(slack: FakeSlack, request_ids: Iterable[str]) -> None:
    """Each card ends final, and Slack never took an older version after a newer one."""
    seen = card_versions(slack)
    for request_id in request_ids:
        versions = [version for version, _ in seen[request_id]]
        # Equal is a re-render of the same version (a retry after a kill), never older.
        assert versions == sorted(versions), (request_id, seen[request_id])
        assert RequestState(seen[request_id][-1][1]).is_final, (request_id, seen[request_id])
