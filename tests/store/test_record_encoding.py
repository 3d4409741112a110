"""Request records on a real Redis with its default hash-max-listpack-value: the compact
encoding holds for a full record, and records of the previous layout still read and update."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis.asyncio as aioredis

from relay.core import transitions
from relay.core.commands import Action, Requester
from relay.core.ids import new_id
from relay.core.records import RequestRecord, RequestState
from relay.store import keys, outcomes, replies
from relay.store.connection import text
from relay.store.requests import RequestStore

NOW = datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=UTC)
URL = "https://hooks.slack.com/commands/T0123ABCD/5678901234567/AbCdEfGhIjKlMnOpQrStUvWx"


def _queued(request_id: str, user_name: str = "alice.smith") -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        action=Action.REBALANCE,
        portfolio_id="pf_01JWZG3KH9P4N5QXJVNK7M3WTV",
        state=RequestState.QUEUED,
        requested_by=Requester(team_id="T0123ABCD", user_id="U0123ABCDE", user_name=user_name),
        accepted_at=NOW,
        updated_at=NOW,
        response_url=URL,
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )


def _operation_id(record: RequestRecord) -> str:
    pf = record.portfolio_id
    return f"rebalance:{pf}:{pf}%3Amanual%3A{record.request_id}"


async def _write(redis: aioredis.Redis, request_id: str, fields: dict[str, str]) -> None:
    await redis.hset(keys.request(request_id), mapping=fields)  # type: ignore[arg-type]


async def _encoding(redis: aioredis.Redis, request_id: str) -> str:
    return str(await redis.object("encoding", keys.request(request_id)), "ascii")


async def test_a_tracked_record_with_long_values_stays_a_listpack(
    real_redis: aioredis.Redis,
) -> None:
    """response_url, operation id, requester and a 500-character reply error all over
    64 bytes: the hash stays a listpack on Redis's defaults, and reads back whole."""
    assert await real_redis.config_get("hash-max-listpack-value") == {
        "hash-max-listpack-value": "64"
    }
    queued = _queued(new_id("req"), user_name="Zoë " + "名" * 40)
    await _write(real_redis, queued.request_id, queued.to_hash())
    plan = transitions.submitted(queued, NOW, _operation_id(queued), NOW, NOW)
    assert (await outcomes.apply(real_redis, plan)).applied
    error = "é" * 500
    assert await replies.note_not_sent(
        real_redis, queued.request_id, kind="final", reason=error, dead_id="dl_1", at=NOW
    )
    assert await _encoding(real_redis, queued.request_id) == "listpack"
    found = await RequestStore(real_redis).get(queued.request_id)
    assert found is not None
    assert found.response_url == URL
    assert found.operation_id == _operation_id(queued)
    assert found.requested_by == queued.requested_by
    assert found.reply_error == error
    assert found.submitted_at == NOW
    assert found.state is RequestState.SUBMITTED


async def test_a_note_written_again_keeps_no_chunk_of_the_old_value(
    any_redis: aioredis.Redis,
) -> None:
    queued = _queued(new_id("req"))
    await _write(any_redis, queued.request_id, queued.to_hash())
    await replies.note_not_sent(
        any_redis, queued.request_id, kind="final", reason="x" * 300, dead_id="dl_1", at=NOW
    )
    await replies.note_not_sent(
        any_redis, queued.request_id, kind="final", reason="short", dead_id="dl_2", at=NOW
    )
    found = await RequestStore(any_redis).get(queued.request_id)
    assert found is not None
    assert found.reply_error == "short"
    await replies.note_sent(any_redis, queued.request_id, kind="final", via="dm", at=NOW)
    stored = {text(name) for name in await any_redis.hkeys(keys.request(queued.request_id))}
    assert not {name for name in stored if name.startswith("re")} - {"rs", "rk", "rv", "ra"}


def _previous_layout(record: RequestRecord) -> dict[str, str]:
    """The hash as the previous version wrote it: long names, whole values, spaced JSON."""
    out: dict[str, str] = {}
    for name, value in record.model_dump(mode="json", exclude_none=True).items():
        out[name] = json.dumps(value) if isinstance(value, dict) else str(value)
    return out


async def test_a_record_of_the_previous_layout_reads_and_moves_on(
    any_redis: aioredis.Redis,
) -> None:
    """Written before the upgrade (submitted, tracked): read whole, then finished and noted
    by this version, with none of its old fields left to shadow the new ones."""
    queued = _queued(new_id("req"))
    submitted = queued.model_copy(
        update={
            "state": RequestState.SUBMITTED,
            "operation_id": _operation_id(queued),
            "operation_state": "accepted",
            "submitted_at": NOW,
            "error_message": "an old message that the final step clears",
        }
    )
    await _write(any_redis, queued.request_id, _previous_layout(submitted))
    store = RequestStore(any_redis)
    assert await store.get(queued.request_id) == submitted

    plan = transitions.vanished(submitted, NOW, "Glider says no " * 10)
    assert (await outcomes.apply(any_redis, plan)).applied
    await replies.note_sent(any_redis, queued.request_id, kind="final", via="dm", at=NOW)
    found = await store.get(queued.request_id)
    assert found is not None
    assert found.state.is_final
    assert found.error_message == "Glider says no " * 10
    assert found.operation_id == _operation_id(queued)
    assert found.reply_via == "dm"
    stored = {text(name) for name in await any_redis.hkeys(keys.request(queued.request_id))}
    # Each field rewritten lost its long name; one never rewritten keeps it (and its value).
    assert not stored & {"error_message", "reply_via"}
    assert {"em", "rv", "updated_at"} <= stored
    assert found.updated_at == NOW
