"""Pending approvals for the Home tab: only requests still pending, soonest deadline first."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.core.commands import Action, QueuedCommand, Requester
from relay.store import keys
from relay.store.confirmations import approval_fields, pending_approvals


def _command(portfolio_id: str) -> QueuedCommand:
    return QueuedCommand(
        request_id=f"req_{portfolio_id}",
        action=Action.REBALANCE,
        portfolio_id=portfolio_id,
        requested_by=Requester(user_id="U1"),
    )


async def test_pending_approvals_skip_decided_and_forgotten(any_redis: aioredis.Redis) -> None:
    """A decided request and a token whose hash expired are not listed."""
    for token, due, state in (("tok_b", 200, "pending"), ("tok_a", 100, "pending")):
        fields = approval_fields(_command(token), "facts", due) | {"state": state}
        await any_redis.hset(keys.approval(token), mapping=fields)  # type: ignore[arg-type]
        await any_redis.zadd(keys.APPROVALS_DUE, {token: due})
    decided = approval_fields(_command("tok_c"), "facts", 50) | {"state": "approved"}
    await any_redis.hset(keys.approval("tok_c"), mapping=decided)  # type: ignore[arg-type]
    await any_redis.zadd(keys.APPROVALS_DUE, {"tok_c": 50, "tok_gone": 10})
    found = await pending_approvals(any_redis)
    assert [a.token for a in found] == ["tok_a", "tok_b"]
    assert found[0].command.portfolio_id == "tok_a"
    assert await pending_approvals(any_redis, limit=1) == []  # the soonest is the expired one
