"""The access policy: parsing with line-numbered errors, and first-matching-rule decisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.policy import Policy, PolicyError, Verb, parse_policy

EXAMPLE = """\
[roles]
operators = ["U012AB3CD", "S0OPSTEAM"]
approvers = ["U045EF6GH", "U078IJ9KL"]

[[rules]]
portfolios = ["pf_treasury_*"]
rebalance = ["operators"]
pause = ["operators", "approvers"]
resume = ["operators"]
approve = ["approvers"]
require_approval = true

[[rules]]
portfolios = ["*"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
"""
GROUPS = {"S0OPSTEAM": frozenset({"U0GROUPIE"})}


def test_the_documented_example_parses() -> None:
    """The example of docs/contract.md §8 is a valid policy with two rules."""
    policy = parse_policy(EXAMPLE)
    assert [r.portfolios for r in policy.rules] == [("pf_treasury_*",), ("*",)]
    assert policy.user_groups() == {"S0OPSTEAM"}


def test_first_matching_rule_applies_with_its_approval() -> None:
    """A treasury portfolio takes the first rule (approval required); others the second."""
    policy = parse_policy(EXAMPLE)
    treasury = policy.decide("U012AB3CD", Verb.REBALANCE, "pf_treasury_1")
    assert (treasury.allowed, treasury.require_approval, treasury.rule) == (True, True, 0)
    other = policy.decide("U012AB3CD", Verb.REBALANCE, "pf_other")
    assert (other.allowed, other.require_approval, other.rule) == (True, False, 1)


def test_refusal_names_the_roles_needed() -> None:
    """An approver may not rebalance; the decision says which role would do."""
    decision = parse_policy(EXAMPLE).decide("U045EF6GH", Verb.REBALANCE, "pf_treasury_1")
    assert not decision.allowed
    assert decision.needed_roles == ("operators",)


def test_group_members_hold_the_role_only_through_resolved_groups() -> None:
    """A user in S0OPSTEAM is an operator once the caller resolves the group."""
    policy = parse_policy(EXAMPLE)
    assert not policy.decide("U0GROUPIE", Verb.PAUSE, "pf_x").allowed
    assert policy.decide("U0GROUPIE", Verb.PAUSE, "pf_x", GROUPS).allowed


def test_status_needs_any_role_of_the_rule() -> None:
    """An approver may ask for status on treasury (they hold a role there) but not elsewhere."""
    policy = parse_policy(EXAMPLE)
    assert policy.decide("U045EF6GH", Verb.STATUS, "pf_treasury_9").allowed
    assert not policy.decide("U045EF6GH", Verb.STATUS, "pf_other").allowed


def test_no_matching_rule_refuses() -> None:
    """Without a catch-all rule, an unmatched portfolio is refused and no rule is named."""
    policy = parse_policy(EXAMPLE.split('[[rules]]\nportfolios = ["*"]', 1)[0])
    decision = policy.decide("U012AB3CD", Verb.REBALANCE, "pf_other")
    assert not decision.allowed
    assert not decision.matched


def test_allow_list_mode_is_bot_allowed_users() -> None:
    """No policy file: listed users may run everything; nobody approves; ``*`` is everyone."""
    listed = Policy.allow_list({"U1"})
    assert listed.decide("U1", Verb.REBALANCE, "pf_x").allowed
    assert not listed.decide("U2", Verb.REBALANCE, "pf_x").allowed
    assert not listed.decide("U1", Verb.REBALANCE, "pf_x").require_approval
    assert not listed.decide("U1", Verb.APPROVE, "pf_x").allowed
    assert Policy.allow_list({"*"}).decide("U9", Verb.RESUME, "pf_x").allowed
    assert not Policy.allow_list(set()).decide("U1", Verb.PAUSE, "pf_x").allowed


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            '[roles]\nops = ["U012AB3CD"]\n[[rules]]\nportfolios = ["*"]\nrebalance = ["opz"]\n',
            5,
            "'opz' is not defined",
        ),
        (
            '[roles]\nops = ["U012AB3CD"]\n[[rules]]\nportfolios = ["*"]\nrebalanse = ["ops"]\n',
            5,
            "unknown key 'rebalanse'",
        ),
        ('[roles]\nops = ["alice"]\n[[rules]]\nportfolios = ["*"]\n', 2, "'alice'"),
        ('[roles]\nops = ["U012AB3CD"\n[[rules]]\n', 3, "not valid TOML"),
        ('[roles]\nops = ["U012AB3CD"]\n[[rules]]\nportfolios = []\n', 4, "non-empty"),
        (
            '[roles]\nops = ["U012AB3CD"]\n[[rules]]\nportfolios = ["*"]\n'
            "require_approval = true\n",
            5,
            "needs an approve role",
        ),
        (
            '[roles]\nops = ["U012AB3CD"]\n[[rules]]\nportfolios = ["*"]\n'
            'require_approval = "yes"\n',
            5,
            "true or false",
        ),
        ('[roles]\nops = ["U012AB3CD"]\n\n[extra]\n', 4, "unknown key 'extra'"),
    ],
)
def test_a_bad_file_names_the_line(text: str, line: int, words: str) -> None:
    """Every kind of mistake raises PolicyError with ``name:line`` and what is wrong."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, name="policy.toml")
    assert str(caught.value).startswith(f"policy.toml:{line}:"), str(caught.value)
    assert words in str(caught.value)


def test_the_second_rule_error_points_into_the_second_rule() -> None:
    """An undefined role in rule 2 names rule 2's line, not rule 1's."""
    text = EXAMPLE.replace('resume = ["operators"]\n"""', "").rstrip() + "\n"
    bad = text.rsplit('resume = ["operators"]', 1)[0] + 'resume = ["nobody"]\n'
    with pytest.raises(PolicyError) as caught:
        parse_policy(bad, name="p.toml")
    assert str(caught.value).startswith(f"p.toml:{bad.count(chr(10))}:")


@given(st.text(max_size=400))
def test_any_text_parses_or_raises_policy_error(text: str) -> None:
    """Arbitrary input never raises anything but PolicyError."""
    try:
        parse_policy(text)
    except PolicyError as exc:
        message = str(exc)
    else:
        message = "policy parsed"
    assert message.startswith("policy")
