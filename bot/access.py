"""Who may do what (docs/contract.md §8): the access policy with Slack user groups resolved."""

from __future__ import annotations

from dataclasses import dataclass

from relay.core.policy import Decision, Policy, Verb
from relay.slack.usergroups import GroupResolver


@dataclass(frozen=True)
class Access:
    """``await decide(user, verb, portfolio)``: the policy's answer, groups looked up first."""

    policy: Policy
    groups: GroupResolver

    async def decide(self, user_id: str, verb: Verb, portfolio_id: str) -> Decision:
        named = self.policy.user_groups() if self.policy.from_file else frozenset()
        members = await self.groups.members(named) if named else {}
        return self.policy.decide(user_id, verb, portfolio_id, members)

    def approvers(self, portfolio_id: str) -> tuple[str, ...]:
        """The roles that may approve a rebalance of ``portfolio_id`` (none: no approval)."""
        found = self.policy.rule_for(portfolio_id)
        return found[1].roles_for(Verb.APPROVE) if found else ()

    async def visible(self, user_id: str, portfolio_ids: list[str]) -> set[str] | None:
        """Which of ``portfolio_ids`` the user may see (``status``), or None: nothing at all.

        None means the user may not read any portfolio (not on ``BOT_ALLOWED_USERS``, or
        holding no role of the policy file): a list answers with a refusal, not an empty list.
        """
        policy = self.policy
        named = policy.user_groups() if policy.from_file else frozenset()
        members = await self.groups.members(named) if named else {}
        if policy.from_file:
            if not any(policy.holds(user_id, role, members) for role in policy.roles):
                return None
        elif not policy.decide(user_id, Verb.STATUS, "-").allowed:
            return None
        return {p for p in portfolio_ids if policy.decide(user_id, Verb.STATUS, p, members).allowed}
