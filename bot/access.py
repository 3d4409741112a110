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

    async def decide(
        self, user_id: str, verb: Verb, portfolio_id: str, *, within: float | None = None
    ) -> Decision:
        """The policy's answer, waiting at most ``within`` s for Slack's user groups (an
        ack's deadline); a group not resolved by then grants what it was last known to."""
        named = self.policy.user_groups() if self.policy.from_file else frozenset()
        members = await self.groups.members(named, within=within) if named else {}
        return self.policy.decide(user_id, verb, portfolio_id, members)

    def unchecked_groups(self, verb: Verb, portfolio_id: str) -> tuple[str, ...]:
        """The user groups a refusal of ``verb`` here rests on whose members Slack has not
        told lately: the refusal may be wrong for a member of one of them."""
        found = self.policy.rule_for(portfolio_id) if self.policy.from_file else None
        if found is None:
            return ()
        roles = found[1].roles_for(verb)
        named = {m for role in roles for m in self.policy.roles.get(role, ()) if m[0] == "S"}
        return self.groups.unanswered(named)

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
