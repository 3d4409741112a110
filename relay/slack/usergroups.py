"""Members of Slack user groups (``usergroups.users.list``), cached, for the access policy.

A role may name a user group (``S...``); who is in it is Slack's to say. Answers
are cached for :data:`CACHE_S`; a failed lookup is logged, keeps the last answer
it had (or none: the group then grants nothing), and is not asked again for
:data:`RETRY_AFTER_FAILURE_S`, so a Slack outage costs at most one bounded call per
group in that time and never delays an ack past :data:`LOOKUP_BUDGET_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError, SlackClientError

from relay.slack.client import SlackApi

log = logging.getLogger(__name__)

CACHE_S = 180.0
RETRY_AFTER_FAILURE_S = 30.0
LOOKUP_BUDGET_S = 1.5
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class _Known:
    members: frozenset[str]
    fresh_until: float


class GroupResolver:
    """``await members(groups)``: each group's user ids, from the cache or from Slack."""

    def __init__(
        self,
        slack: SlackApi,
        *,
        budget_s: float = LOOKUP_BUDGET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slack = slack
        self._budget_s = budget_s
        self._clock = clock
        self._known: dict[str, _Known] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        """Every group's members; a group Slack did not answer for has its last known ones."""
        wanted = sorted(set(groups))
        stale = [g for g in wanted if self._stale(g)]
        if stale:
            try:
                async with asyncio.timeout(self._budget_s):
                    await asyncio.gather(*(self._refresh(g) for g in stale))
            except TimeoutError:
                log.warning("user groups not resolved in time", extra={"groups": stale})
        return {g: self._known[g].members for g in wanted if g in self._known}

    def _stale(self, group: str) -> bool:
        known = self._known.get(group)
        return known is None or known.fresh_until <= self._clock()

    async def _refresh(self, group: str) -> None:
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:  # one lookup per group at a time; the others use its answer
            if not self._stale(group):
                return
            members = await self._lookup(group)
            previous = self._known.get(group)
            if members is None:
                kept = previous.members if previous else frozenset()
                self._known[group] = _Known(kept, self._clock() + RETRY_AFTER_FAILURE_S)
            else:
                self._known[group] = _Known(members, self._clock() + CACHE_S)

    async def _lookup(self, group: str) -> frozenset[str] | None:
        if self._slack.web is None:
            log.warning("user group %s not resolved: no SLACK_BOT_TOKEN", group)
            return None
        try:
            answer = await self._slack.web.usergroups_users_list(usergroup=group)
        except (SlackApiError, SlackClientError, OSError, ValueError) as exc:
            log.warning(
                "usergroups.users.list failed", extra={"group": group, "error": repr(exc)[:300]}
            )
            return None
        users = answer.get("users")
        if not isinstance(users, list):
            return None
        return frozenset(u for u in users[:MAX_MEMBERS] if isinstance(u, str) and len(u) <= 32)
