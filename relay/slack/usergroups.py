"""Members of Slack user groups (``usergroups.users.list``), cached, for the access policy.

A role may name a user group (``S...``); who is in it is Slack's to say. Answers
are cached for :data:`CACHE_S`; a failed lookup is logged, keeps the last answer
it had (or none: the group then grants nothing), and is not asked again for
:data:`RETRY_AFTER_FAILURE_S`, so a Slack outage costs at most one call per group in
that time. A caller waits for a lookup at most :data:`LOOKUP_BUDGET_S`, or less when
its own deadline is nearer (bot/deadline.py); a lookup it stopped waiting for goes on
in the background and fills the cache for the next caller, and :meth:`GroupResolver.unanswered`
tells the caller which groups it could not check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from relay.slack.client import SlackApi

log = logging.getLogger(__name__)

CACHE_S = 180.0
RETRY_AFTER_FAILURE_S = 30.0
LOOKUP_BUDGET_S = 1.5
MAX_MEMBERS = 10_000


Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass(frozen=True)
class _Known:
    members: frozenset[str]
    fresh_until: float
    answered: bool  # False: the last lookup failed, ``members`` are older (or none)


class GroupResolver:
    """``await members(groups)``: each group's user ids, from the cache or from Slack.

    ``spawn`` starts a lookup as a task (the web process's :class:`bot.background.Background`,
    so lookups are drained at shutdown); by default a plain task.
    """

    def __init__(
        self,
        slack: SlackApi,
        *,
        budget_s: float = LOOKUP_BUDGET_S,
        clock: Callable[[], float] = time.monotonic,
        spawn: Spawn = asyncio.ensure_future,
    ) -> None:
        self._slack = slack
        self._budget_s = budget_s
        self._clock = clock
        self._spawn = spawn
        self._known: dict[str, _Known] = {}
        self._lookups: dict[str, asyncio.Task[None]] = {}

    async def members(
        self, groups: Iterable[str], *, within: float | None = None
    ) -> Mapping[str, frozenset[str]]:
        """Every group's members, waiting at most ``within`` s (and the resolver's budget)
        for Slack; a group Slack did not answer for in time has its last known ones."""
        wanted = sorted(set(groups))
        lookups = {self._looking_up(g) for g in wanted if self._stale(g)}
        if lookups:
            wait_s = self._budget_s if within is None else min(self._budget_s, within)
            _, late = await asyncio.wait(lookups, timeout=max(0.0, wait_s))
            if late:
                log.warning("user groups not resolved in time", extra={"groups": wanted})
        return {g: self._known[g].members for g in wanted if g in self._known}

    def unanswered(self, groups: Iterable[str]) -> tuple[str, ...]:
        """Those of ``groups`` whose members Slack has not told (in time, or at all) lately:
        a refusal may be wrong for them, and must say so."""
        return tuple(
            g for g in sorted(set(groups)) if self._stale(g) or not self._known[g].answered
        )

    def _stale(self, group: str) -> bool:
        known = self._known.get(group)
        return known is None or known.fresh_until <= self._clock()

    def _looking_up(self, group: str) -> asyncio.Task[None]:
        """The group's lookup under way, or a new one: one per group at a time."""
        running = self._lookups.get(group)
        if running is None or running.done():
            running = self._spawn(self._refresh(group))
            self._lookups[group] = running
        return running

    async def _refresh(self, group: str) -> None:
        members = await self._lookup(group)
        previous = self._known.get(group)
        if members is None:
            kept = previous.members if previous else frozenset()
            self._known[group] = _Known(kept, self._clock() + RETRY_AFTER_FAILURE_S, False)
        else:
            self._known[group] = _Known(members, self._clock() + CACHE_S, True)

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
