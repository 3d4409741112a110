"""The access policy (``RELAY_POLICY_FILE``, docs/contract.md §8): who may do what, where.

Pure: :func:`parse_policy` turns the TOML text into a :class:`Policy` or raises
:class:`PolicyError` naming the line that is wrong; :meth:`Policy.decide` answers
one question. Slack user groups (``S...``) are resolved by the caller (Slack's
``usergroups.users.list``) and passed in as a mapping, so nothing here does I/O.

Without a policy file, :meth:`Policy.allow_list` reproduces ``BOT_ALLOWED_USERS``:
the listed users (or ``*``) may run every command and nothing needs approval.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

# Slack ids: users are U... or W... (Enterprise Grid), user groups are S...
_MEMBER_RE = re.compile(r"^[UWS][A-Z0-9]{2,31}$")
_ROLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_GLOB_RE = re.compile(r"^[A-Za-z0-9_*?\[\]!-]{1,64}$")
_MAX_ROLES = 200
_MAX_MEMBERS = 5_000
_MAX_RULES = 500
_NO_GROUPS: Mapping[str, frozenset[str]] = {}


class Verb(StrEnum):
    """What a rule grants: one list of roles each (``status`` needs any role of the rule)."""

    REBALANCE = "rebalance"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    STATUS = "status"


_RULE_KEYS = frozenset({"portfolios", "require_approval"} | {v.value for v in Verb} - {"status"})


class PolicyError(ValueError):
    """The policy file is wrong; ``str()`` names the line (``policy.toml:12: ...``)."""


@dataclass(frozen=True)
class Rule:
    """One ``[[rules]]`` table: portfolio globs and the roles each verb needs."""

    portfolios: tuple[str, ...]
    roles: Mapping[Verb, tuple[str, ...]]
    require_approval: bool = False

    def matches(self, portfolio_id: str) -> bool:
        return any(fnmatchcase(portfolio_id, glob) for glob in self.portfolios)

    def roles_for(self, verb: Verb) -> tuple[str, ...]:
        if verb is Verb.STATUS:
            every = (role for roles in self.roles.values() for role in roles)
            return tuple(dict.fromkeys(every))
        return self.roles.get(verb, ())


@dataclass(frozen=True)
class Decision:
    """The answer to "may this user do this here?", with what a refusal must say."""

    allowed: bool
    needed_roles: tuple[str, ...] = ()
    rule: int | None = None  # index of the rule that applied; None: no rule matched
    require_approval: bool = False

    @property
    def matched(self) -> bool:
        return self.rule is not None


@dataclass(frozen=True)
class Policy:
    """Roles (members: user and group ids) and ordered rules; the first matching rule applies."""

    roles: Mapping[str, frozenset[str]]
    rules: tuple[Rule, ...]
    allowed_users: frozenset[str] | None = field(default=None)  # set: BOT_ALLOWED_USERS mode

    @classmethod
    def allow_list(cls, allowed_users: Iterable[str]) -> Policy:
        """No policy file: ``BOT_ALLOWED_USERS`` may run everything, without approvals."""
        return cls(roles={}, rules=(), allowed_users=frozenset(allowed_users))

    @property
    def from_file(self) -> bool:
        return self.allowed_users is None

    def user_groups(self) -> frozenset[str]:
        """Every user-group id the roles name (what the caller must resolve)."""
        return frozenset(m for members in self.roles.values() for m in members if m[0] == "S")

    def rule_for(self, portfolio_id: str) -> tuple[int, Rule] | None:
        for index, rule in enumerate(self.rules):
            if rule.matches(portfolio_id):
                return index, rule
        return None

    def holds(
        self, user_id: str, role: str, groups: Mapping[str, frozenset[str]] = _NO_GROUPS
    ) -> bool:
        members = self.roles.get(role, frozenset())
        if user_id in members:
            return True
        return any(user_id in groups.get(m, frozenset()) for m in members if m[0] == "S")

    def decide(
        self,
        user_id: str,
        verb: Verb,
        portfolio_id: str,
        groups: Mapping[str, frozenset[str]] = _NO_GROUPS,
    ) -> Decision:
        """May ``user_id`` do ``verb`` on ``portfolio_id``? Pure; ``groups`` resolves ``S...``."""
        if self.allowed_users is not None:
            allowed = bool(user_id) and ("*" in self.allowed_users or user_id in self.allowed_users)
            # Approving needs a policy file: in allow-list mode nothing asks for approval.
            return Decision(allowed=allowed and verb is not Verb.APPROVE)
        found = self.rule_for(portfolio_id)
        if found is None:
            return Decision(allowed=False)
        index, rule = found
        needed = rule.roles_for(verb)
        allowed = bool(user_id) and any(self.holds(user_id, r, groups) for r in needed)
        return Decision(
            allowed=allowed,
            needed_roles=needed,
            rule=index,
            require_approval=rule.require_approval,
        )


def parse_policy(text: str, *, name: str = "policy") -> Policy:
    """The :class:`Policy` in ``text``, or :class:`PolicyError` naming the wrong line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f"{name}:{line.group(1)}" if line else name
        raise PolicyError(f"{where}: not valid TOML ({exc})") from None
    locate = _Locator(text, name)
    unknown = set(raw) - {"roles", "rules"}
    if unknown:
        key = sorted(unknown)[0]
        raise PolicyError(f"{locate.key(key)}: unknown key {key!r} (expected roles, rules)")
    roles = _parse_roles(raw.get("roles", {}), locate)
    rules = raw.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise PolicyError(f"{locate.key('rules')}: rules must be [[rules]] tables")
    if not rules:
        raise PolicyError(f"{name}: no [[rules]]: every command would be refused")
    if len(rules) > _MAX_RULES:
        raise PolicyError(f"{name}: more than {_MAX_RULES} rules")
    parsed = tuple(_parse_rule(i, r, roles, locate) for i, r in enumerate(rules))
    return Policy(roles=roles, rules=parsed)


def _parse_roles(raw: Any, locate: _Locator) -> dict[str, frozenset[str]]:
    if not isinstance(raw, dict):
        raise PolicyError(f"{locate.key('roles')}: roles must be a table of lists")
    if len(raw) > _MAX_ROLES:
        raise PolicyError(f"{locate.key('roles')}: more than {_MAX_ROLES} roles")
    roles: dict[str, frozenset[str]] = {}
    for role, members in raw.items():
        where = locate.key(role, table="roles")
        if not _ROLE_RE.match(role):
            raise PolicyError(f"{where}: role name {role!r} must be letters, digits, _ or -")
        if not isinstance(members, list) or len(members) > _MAX_MEMBERS:
            raise PolicyError(f"{where}: role {role!r} must be a list of Slack user or group ids")
        for member in members:
            if not isinstance(member, str) or not _MEMBER_RE.match(member):
                shown = str(member)[:40]
                raise PolicyError(
                    f"{where}: {shown!r} in role {role!r} is not a Slack user (U.../W...) "
                    "or user-group (S...) id"
                )
        roles[role] = frozenset(members)
    return roles


def _parse_rule(
    index: int, raw: dict[str, Any], roles: Mapping[str, Any], locate: _Locator
) -> Rule:
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        allowed = ", ".join(sorted(_RULE_KEYS))
        raise PolicyError(
            f"{locate.rule_key(index, key)}: unknown key {key!r} (expected {allowed})"
        )
    granted = _parse_grants(index, raw, roles, locate)
    approval = raw.get("require_approval", False)
    where = locate.rule_key(index, "require_approval")
    if not isinstance(approval, bool):
        raise PolicyError(f"{where}: require_approval must be true or false")
    if approval and not granted[Verb.APPROVE]:
        raise PolicyError(f"{where}: require_approval = true needs an approve role in this rule")
    return Rule(
        portfolios=_parse_globs(index, raw, locate), roles=granted, require_approval=approval
    )


def _parse_globs(index: int, raw: dict[str, Any], locate: _Locator) -> tuple[str, ...]:
    globs = raw.get("portfolios")
    where = locate.rule_key(index, "portfolios")
    if not isinstance(globs, list) or not globs:
        raise PolicyError(f"{where}: portfolios must be a non-empty list of globs")
    for glob in globs:
        if not isinstance(glob, str) or not _GLOB_RE.match(glob):
            raise PolicyError(f"{where}: {str(glob)[:70]!r} is not a portfolio id glob")
    return tuple(globs)


def _parse_grants(
    index: int, raw: dict[str, Any], roles: Mapping[str, Any], locate: _Locator
) -> dict[Verb, tuple[str, ...]]:
    granted: dict[Verb, tuple[str, ...]] = {}
    for verb in (Verb.REBALANCE, Verb.PAUSE, Verb.RESUME, Verb.APPROVE):
        names = raw.get(verb.value, [])
        where = locate.rule_key(index, verb.value)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PolicyError(f"{where}: {verb.value} must be a list of role names")
        for role_name in names:
            if role_name not in roles:
                raise PolicyError(f"{where}: role {role_name[:64]!r} is not defined in [roles]")
        granted[verb] = tuple(names)
    return granted


class _Locator:
    """Line numbers for semantic errors (``tomllib`` keeps none): found by scanning the text."""

    def __init__(self, text: str, name: str) -> None:
        self._lines = text.splitlines()
        self._name = name

    def _at(self, line: int | None) -> str:
        return f"{self._name}:{line}" if line is not None else self._name

    def _find(self, key: str, start: int = 0, stop: int | None = None) -> int | None:
        pattern = re.compile(rf'^\s*(?:{re.escape(key)}|"{re.escape(key)}")\s*=')
        header = re.compile(rf"^\s*\[\[?\s*{re.escape(key)}\s*\]\]?")
        for number in range(start, len(self._lines) if stop is None else stop):
            line = self._lines[number]
            if pattern.match(line) or header.match(line):
                return number + 1
        return None

    def _table(self, header_re: str) -> list[int]:
        found = re.compile(header_re)
        return [n for n, line in enumerate(self._lines) if found.match(line)]

    def key(self, key: str, *, table: str | None = None) -> str:
        if table is None:
            return self._at(self._find(key))
        starts = self._table(rf"^\s*\[\s*{re.escape(table)}\s*\]")
        start = starts[0] if starts else 0
        return self._at(self._find(key, start + 1, self._next_header(start)) or start + 1)

    def rule_key(self, index: int, key: str) -> str:
        starts = self._table(r"^\s*\[\[\s*rules\s*\]\]")
        if index >= len(starts):
            return self._name
        start = starts[index]
        return self._at(self._find(key, start + 1, self._next_header(start)) or start + 1)

    def _next_header(self, start: int) -> int:
        for number in range(start + 1, len(self._lines)):
            if re.match(r"^\s*\[", self._lines[number]):
                return number
        return len(self._lines)
