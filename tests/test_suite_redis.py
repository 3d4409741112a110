"""The suite's own Redis: a server it started itself (never a developer's), on the
shipped ``redis.conf``, which has the settings README asks for."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import redis

from tests.fixtures.redis import EXTERNAL_URL_ENV
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
    """appendonly, noeviction: README and redis.conf say the same. No encoding tuning:
    request records are compact on Redis's default (tests/store/test_record_encoding.py),
    so the suite's server runs on that default too."""
    asked = _readme_asks()
    assert {"appendonly", "maxmemory-policy"} <= asked.keys()
    conf = _conf_settings()
    assert "hash-max-listpack-value" not in {**asked, **conf}
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


def _parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_the_real_server_is_one_the_suite_started_or_the_one_named(redis_server_url: str) -> None:
    """Whatever answers on 127.0.0.1:6379 is left alone: the tests' server is a child of
    this session, unless GLIDER_RELAY_TEST_REDIS_URL names one explicitly."""
    external = os.environ.get(EXTERNAL_URL_ENV, "").strip()
    if external:
        assert redis_server_url == external
        return
    client = redis.Redis.from_url(redis_server_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    assert _parent_pid(pid) == os.getpid()
