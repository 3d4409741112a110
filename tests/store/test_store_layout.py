"""The store's layering holds: Lua only in relay/store/lua, key names only in keys.py."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from tests import ROOT

SOURCES = sorted([*(ROOT / "relay").rglob("*.py"), *(ROOT / "bot").rglob("*.py")])
KEYS_MODULE = ROOT / "relay" / "store" / "keys.py"
LOADER = ROOT / "relay" / "store" / "scripts.py"
SUFFIX = re.compile(r":(due|inflight|dlvs)\b")
SCRIPT_CALLS = ("register_script", "evalsha", "script_load", ".eval(")


def _strings(path: Path) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [t.string for t in tokens if t.type == tokenize.STRING]


def test_no_lua_outside_the_lua_folder() -> None:
    """No Python module of relay/ or bot/ holds Lua (``redis.call(`` in a string)."""
    found = [p.relative_to(ROOT) for p in SOURCES if any("redis.call(" in s for s in _strings(p))]
    assert found == []


def test_scripts_go_only_through_the_loader() -> None:
    """No register_script, EVAL/EVALSHA or SCRIPT LOAD beside relay/store/scripts.py."""
    found = [
        (p.relative_to(ROOT), call)
        for p in SOURCES
        if p != LOADER
        for call in SCRIPT_CALLS
        if call in p.read_text()
    ]
    assert found == []


def test_no_key_suffix_outside_keys_py() -> None:
    """``:due``, ``:inflight``, ``:dlvs`` are spelled only in relay/store/keys.py."""
    found = [
        (p.relative_to(ROOT), s)
        for p in SOURCES
        if p != KEYS_MODULE
        for s in _strings(p)
        if SUFFIX.search(s)
    ]
    assert found == []


def test_lua_builds_no_key_name() -> None:
    """The scripts name no key: no hash tag, no key suffix, no concatenation onto a key."""
    for path in (ROOT / "relay" / "store" / "lua").glob("*.lua"):
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
        )
        assert "{gr}" not in code, path.name
        assert not SUFFIX.search(code), path.name
        assert not re.search(r"KEYS\[\w+\]\s*\.\.", code), path.name
