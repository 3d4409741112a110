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
