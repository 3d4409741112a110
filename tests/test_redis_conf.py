"""The shipped ``redis.conf``: the settings README asks for, in effect on the suite's server."""

from __future__ import annotations

import re

import pytest
import redis

from tests.fixtures.redis_server import REDIS_CONF, ROOT, private_server

# README's "Redis requirements" names each setting as `name value`.
_ASKED = re.compile(r"^- `([a-z-]+) ([a-z0-9]+)`", re.MULTILINE)


def _conf_settings() -> dict[str, str]:
    settings = {}
    for line in REDIS_CONF.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            settings[name] = value.strip('"')  # save "" means: no value
    return settings


def _readme_asks() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Redis requirements.**", 1)[1].split("\n\n", 1)[0]
    return dict(_ASKED.findall(section))


def test_redis_conf_has_every_setting_readme_asks_for() -> None:
    """appendonly, noeviction, listpack size: README and redis.conf say the same."""
    asked = _readme_asks()
    assert {"appendonly", "maxmemory-policy", "hash-max-listpack-value"} <= asked.keys()
    conf = _conf_settings()
    for name, value in asked.items():
        assert conf.get(name) == value, f"redis.conf: {name} {conf.get(name)!r}, README: {value}"
    assert conf["appendfsync"] == "everysec"


@pytest.mark.real_server
def test_the_suites_private_server_runs_on_redis_conf() -> None:
    """The suite's own server (as redis_server_url starts it) has redis.conf in effect;
    only port, bind and dir differ."""
    with private_server() as (url, _pid):
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            for name, value in _conf_settings().items():
                if name not in ("port", "bind"):
                    assert client.config_get(name) == {name: value}
        finally:
            client.close()
