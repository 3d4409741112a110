"""docs/grafana-dashboard.json and README's metric table name what /metrics really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram

from relay import metrics
from relay.metrics import metrics_server
from tests.fixtures.web import WebFactory

ROOT = Path(__file__).resolve().parent.parent
METRIC_NAME = re.compile(r"\bglider_relay_[a-z_]+\b")
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def _exported(exposition: str) -> set[str]:
    """Every series name a scrape offers: each ``# TYPE`` family, histograms with their series."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SERIES)
    return names


async def _scrape_web_and_worker(any_redis: aioredis.Redis, web_factory: WebFactory) -> set[str]:
    web = await web_factory(any_redis)
    web_text = await (await web.client.get("/metrics")).text()
    async with (
        metrics_server(0, host="127.0.0.1") as address,
        aiohttp.ClientSession() as http,
        http.get(f"http://{address}/metrics") as response,
    ):
        worker_text = await response.text()
    return _exported(web_text) | _exported(worker_text)


def _panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


async def test_every_dashboard_query_names_an_exported_metric(
    any_redis: aioredis.Redis, web_factory: WebFactory
) -> None:
    """Each panel's query uses only series that the web's or a worker's /metrics offers."""
    exported = await _scrape_web_and_worker(any_redis, web_factory)
    queries = _panel_queries()
    assert queries
    for title, expr in queries:
        used = METRIC_NAME.findall(expr)
        assert used, title
        for name in used:
            assert name in exported, (title, name)


async def test_every_metric_is_on_the_dashboard(
    any_redis: aioredis.Redis, web_factory: WebFactory
) -> None:
    """No exported family is left off the dashboard (a histogram counts through its series)."""
    exported = await _scrape_web_and_worker(any_redis, web_factory)
    used = {name for _, expr in _panel_queries() for name in METRIC_NAME.findall(expr)}
    families = {
        name
        for name in exported
        # ``*_created`` is prometheus_client's creation timestamp of a family, not a metric.
        if name.startswith("glider_relay_") and not name.endswith((*HISTOGRAM_SERIES, "_created"))
    }
    for family in families:
        series = {family, *(family + suffix for suffix in HISTOGRAM_SERIES)}
        assert series & used, family


def _defined() -> dict[str, tuple[str, ...]]:
    """Each metric relay/metrics.py defines, by exported name, with its label names."""
    found: dict[str, tuple[str, ...]] = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            suffix = "_total" if isinstance(value, Counter) else ""
            found[value._name + suffix] = tuple(value._labelnames)
    return found


def test_readme_lists_each_metric_with_its_real_labels() -> None:
    """README's metric table has one row per metric, naming exactly its labels."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(glider_relay_[a-z_]+)` \|([^|]*)\|", readme, flags=re.MULTILINE)
    documented = {name: tuple(re.findall(r"`([a-z_]+)`", labels)) for name, labels in rows}
    assert documented == _defined()
