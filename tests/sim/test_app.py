"""The simulator over real HTTP, spoken to with a bare aiohttp client."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from relay.sim.app import operation_id_candidates
from relay.sim.config import (
    ADMIN_KEY,
    OTHER_TENANT_KEY,
    PF_MAIN,
    PF_NO_SCHEDULE,
    PF_OTHER_TENANT,
    PF_ULID,
    READONLY_KEY,
    SimConfig,
)
from relay.sim.server import add_parser, banner, config_from_args
from tests import ROOT
from tests.fixtures.glider import GliderSim, SimFactory

ADMIN = {"x-api-key": ADMIN_KEY}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sim: GliderSim,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse, bytes]:
    """Send ``path`` exactly as written (no re-encoding) and return status, JSON, response, body."""
    url = URL(sim.url + path, encoded=True)
    async with http.request(method, url, headers=ADMIN if headers is None else headers) as resp:
        body = await resp.read()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        return resp.status, payload, resp, body


async def rebalance(http: aiohttp.ClientSession, sim: GliderSim, pid: str = PF_MAIN) -> str:
    status, payload, _, _ = await call(http, sim, "POST", f"/v2/portfolios/{pid}/rebalance")
    assert status == 202
    operation_id: str = payload["data"]["operationId"]
    return operation_id


def assert_traced(resp: aiohttp.ClientResponse) -> None:
    assert resp.headers["X-Request-Id"].startswith("req_")
    assert resp.headers["X-Correlation-Id"].startswith("corr_")


async def test_every_answer_carries_request_and_correlation_ids(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """Successes, errors, route misses, injected faults and IP 429s all carry both ids."""
    sim = await sim_factory(ip_rate_limit_per_s=6)
    sim.chaos.fail_next(1, status=502, method="PUT")
    requests = [
        ("GET", "/v2/whoami", ADMIN),
        ("GET", "/v2/whoami", {}),
        ("GET", "/v2/nowhere", ADMIN),
        ("DELETE", f"/v2/portfolios/{PF_MAIN}", ADMIN),
        ("PUT", f"/v2/portfolios/{PF_MAIN}", ADMIN),
        ("GET", f"/v2/portfolios/{PF_OTHER_TENANT}", ADMIN),
        ("GET", "/v2/whoami", ADMIN),
    ]
    statuses = []
    for method, path, headers in requests:
        status, _, resp, _ = await call(http, sim, method, path, headers)
        assert_traced(resp)
        statuses.append(status)
    assert statuses == [200, 401, 404, 405, 502, 404, 429]
    assert all(entry.status is not None for entry in sim.chaos.journal)


async def test_missing_and_invalid_keys_are_401(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """No key is API_101, an unknown key API_102; neither echoes the key."""
    path = f"/v2/portfolios/{PF_MAIN}"
    status, payload, _, _ = await call(http, glider_sim, "GET", path, {})
    assert (status, payload["error"]["code"]) == (401, "API_101")
    status, payload, _, body = await call(
        http, glider_sim, "GET", path, {"x-api-key": "gldr_sk_wrong"}
    )
    assert (status, payload["success"], payload["error"]["code"]) == (401, False, "API_102")
    assert b"gldr_sk_wrong" not in body


async def test_missing_scope_is_403(http: aiohttp.ClientSession, glider_sim: GliderSim) -> None:
    """A read-only key may read but not rebalance, start or stop (API_104)."""
    ro = {"x-api-key": READONLY_KEY}
    status, _, _, _ = await call(http, glider_sim, "GET", f"/v2/portfolios/{PF_MAIN}", ro)
    assert status == 200
    for action in ("rebalance", "start", "stop"):
        path = f"/v2/portfolios/{PF_MAIN}/{action}"
        status, payload, _, _ = await call(http, glider_sim, "POST", path, ro)
        assert (status, payload["error"]["code"]) == (403, "API_104")
    assert glider_sim.state.operations(PF_MAIN) == []


async def test_cross_tenant_404_is_byte_identical_to_a_missing_portfolio(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """Another tenant's portfolio answers exactly what a nonexistent one does."""
    with_it = await sim_factory()
    without_it = await sim_factory(
        portfolios=[p for p in SimConfig.default().portfolios if p.id != PF_OTHER_TENANT]
    )
    path = f"/v2/portfolios/{PF_OTHER_TENANT}"
    status_a, payload, _, foreign = await call(http, with_it, "GET", path)
    status_b, _, _, missing = await call(http, without_it, "GET", path)
    assert status_a == status_b == 404
    assert foreign == missing
    assert payload["error"] == {
        "code": "API_006",
        "message": f"Portfolio with ID {PF_OTHER_TENANT} not found",
    }
    status, _, _, _ = await call(http, with_it, "GET", path, {"x-api-key": OTHER_TENANT_KEY})
    assert status == 200


async def test_rebalance_202_replay_and_cooldown(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """202 with operationId; the same body while in flight; then 429 API_004 + Retry-After."""
    sim = await sim_factory(op_duration_s=4, cooldown_s=30)
    path = f"/v2/portfolios/{PF_MAIN}/rebalance"
    status, first, _, _ = await call(http, sim, "POST", path)
    assert status == 202
    assert set(first["data"]) == {"operationId", "submittedAt"}
    assert first["data"]["submittedAt"] == "2026-04-17T12:00:00.000Z"
    sim.clock.advance(2)
    status, replay, _, _ = await call(http, sim, "POST", path)
    assert (status, replay) == (202, first)
    sim.clock.advance(2)
    status, refused, resp, _ = await call(http, sim, "POST", path)
    assert status == 429
    assert refused == {
        "success": False,
        "error": {
            "code": "API_004",
            "message": "Rebalance for this portfolio finished too recently; "
            "see the Retry-After header",
        },
    }
    assert resp.headers["Retry-After"] == "30"


async def test_start_stop_idempotent_and_400_without_schedule(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """start/stop answer 200 with the detail every time; no schedule answers 400."""
    base = f"/v2/portfolios/{PF_ULID}"
    glider_sim.clock.advance(5)
    status, started, _, _ = await call(http, glider_sim, "POST", base + "/start")
    assert (status, started["data"]["schedule"]["status"]) == (200, "active")
    assert started["data"]["schedule"]["nextDueAt"] == "2026-04-17T12:00:05.000Z"
    glider_sim.clock.advance(5)
    status, again, _, _ = await call(http, glider_sim, "POST", base + "/start")
    assert (status, again) == (200, started)
    for _ in range(2):
        status, stopped, _, _ = await call(http, glider_sim, "POST", base + "/stop")
        assert (status, stopped["data"]["schedule"]["status"]) == (200, "paused")
    status, refused, _, _ = await call(
        http, glider_sim, "POST", f"/v2/portfolios/{PF_NO_SCHEDULE}/start"
    )
    assert (status, refused["error"]["code"]) == (400, "API_002")


async def test_operation_states_through_http(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """GET operations shows the documented fields as the clock moves."""
    op_id = await rebalance(http, glider_sim)
    path = f"/v2/portfolios/{PF_MAIN}/operations/{quote(op_id, safe='')}"
    status, payload, _, _ = await call(http, glider_sim, "GET", path)
    assert status == 200
    assert payload["data"] == {
        "operationId": op_id,
        "portfolioId": PF_MAIN,
        "kind": "rebalance",
        "state": "accepted",
        "createdAt": "2026-04-17T12:00:00.000Z",
        "updatedAt": "2026-04-17T12:00:00.000Z",
        "finishedAt": None,
        "error": None,
    }
    glider_sim.clock.advance(3)
    _, payload, _, _ = await call(http, glider_sim, "GET", path)
    assert payload["data"]["state"] == "completed"
    assert payload["data"]["finishedAt"] == "2026-04-17T12:00:03.000Z"


async def test_strict_sim_accepts_only_ids_encoded_once(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """Strict: encoded once (``:`` raw or not) is found; an unescaped ``%`` or double is 404."""
    op_id = await rebalance(http, glider_sim)
    base = f"/v2/portfolios/{PF_MAIN}/operations/"
    good = [quote(op_id, safe=""), quote(op_id, safe=":")]
    bad = [op_id, quote(quote(op_id, safe=""), safe="")]
    for segment in good:
        assert (await call(http, glider_sim, "GET", base + segment))[0] == 200
    for segment in bad:
        status, payload, _, _ = await call(http, glider_sim, "GET", base + segment)
        assert (status, payload["error"]["code"]) == (404, "API_006")


async def test_lenient_sim_also_accepts_the_raw_id(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """Without strict encoding the id as-is works too, like a forgiving server."""
    sim = await sim_factory(strict_encoding=False)
    op_id = await rebalance(http, sim)
    base = f"/v2/portfolios/{PF_MAIN}/operations/"
    for segment in (quote(op_id, safe=""), op_id):
        assert (await call(http, sim, "GET", base + segment))[0] == 200


async def test_operation_of_another_portfolio_is_404(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """An operation id is only found under its own portfolio."""
    op_id = quote(await rebalance(http, glider_sim), safe="")
    status, payload, _, _ = await call(
        http, glider_sim, "GET", f"/v2/portfolios/{PF_ULID}/operations/{op_id}"
    )
    assert (status, payload["error"]["code"]) == (404, "API_006")


async def test_portfolio_detail_newest_shape(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """By default the detail uses ownerAccountId, smartAccounts and portfolioName."""
    _, payload, _, _ = await call(http, glider_sim, "GET", f"/v2/portfolios/{PF_MAIN}")
    data = payload["data"]
    assert data["portfolioName"] == "Alice Conservative Yield"
    assert data["ownerAccountId"].startswith("eip155:0:")
    assert data["smartAccounts"] == [{"accountId": data["smartAccounts"][0]["accountId"]}]
    assert set(data["schedule"]) == {
        "status",
        "frequency",
        "intervalMs",
        "nextDueAt",
        "lastRebalanceAt",
    }
    assert not {"userAccountId", "vaultAccountIds", "isMirrored", "scheduleId"} & set(data)


async def test_portfolio_detail_legacy_shape(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """legacy_fields serves the older snapshot's names instead."""
    sim = await sim_factory(legacy_fields=True)
    _, payload, _, _ = await call(http, sim, "GET", f"/v2/portfolios/{PF_MAIN}")
    data = payload["data"]
    assert data["userAccountId"].startswith("eip155:0:")
    assert isinstance(data["vaultAccountIds"][0], str)
    assert (data["isMirrored"], data["isPinned"], data["scheduleId"]) == (False, False, "999")
    assert not {"ownerAccountId", "smartAccounts", "portfolioName"} & set(data)
    _, who, _, _ = await call(http, sim, "GET", "/v2/whoami")
    assert "email" in who["data"]
    assert "tenantEmail" not in who["data"]


async def test_whoami(http: aiohttp.ClientSession, glider_sim: GliderSim) -> None:
    """whoami names the tenant and the key's scopes."""
    status, payload, _, _ = await call(
        http, glider_sim, "GET", "/v2/whoami", {"x-api-key": READONLY_KEY}
    )
    assert status == 200
    assert payload["data"]["tenantName"] == "acme"
    assert payload["data"]["scopes"] == ["portfolios:read"]
    assert payload["data"]["apiKeyId"].startswith("key_")


async def test_ip_rate_limit_is_a_flat_429(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """Over the per-IP limit: 429 with the non-envelope body, Retry-After, and ids in both."""
    sim = await sim_factory(ip_rate_limit_per_s=2)
    statuses = [(await call(http, sim, "GET", "/v2/whoami"))[0] for _ in range(2)]
    assert statuses == [200, 200]
    status, payload, resp, _ = await call(http, sim, "GET", "/v2/whoami")
    assert status == 429
    assert resp.headers["Retry-After"] == "1"
    assert payload == {
        "error": "Too Many Requests",
        "message": "Rate limit exceeded. Try again in 1 seconds.",
        "retryAfter": 1,
        "correlationId": resp.headers["X-Correlation-Id"],
        "requestId": resp.headers["X-Request-Id"],
    }
    sim.clock.advance(1)
    assert (await call(http, sim, "GET", "/v2/whoami"))[0] == 200


async def test_injected_faults(http: aiohttp.ClientSession, glider_sim: GliderSim) -> None:
    """500 is Glider's envelope (API_000); 502/503 are a proxy's HTML page."""
    glider_sim.chaos.fail_next(1, status=500)
    glider_sim.chaos.fail_next(1, status=502)
    glider_sim.chaos.fail_next(1, status=503)
    status, payload, _, _ = await call(http, glider_sim, "GET", "/v2/whoami")
    assert (status, payload["error"]["code"]) == (500, "API_000")
    for expected in (502, 503):
        status, payload, resp, body = await call(http, glider_sim, "GET", "/v2/whoami")
        assert (status, payload) == (expected, None)
        assert resp.content_type == "text/html"
        assert str(expected).encode() in body
    assert (await call(http, glider_sim, "GET", "/v2/whoami"))[0] == 200


async def test_fault_after_the_handler_still_takes_effect(
    http: aiohttp.ClientSession, glider_sim: GliderSim
) -> None:
    """A 5xx injected after handling hides a rebalance that really started."""
    glider_sim.chaos.fail_next(1, status=502, after=True)
    status, _, _, _ = await call(http, glider_sim, "POST", f"/v2/portfolios/{PF_MAIN}/rebalance")
    assert status == 502
    assert len(glider_sim.state.operations(PF_MAIN)) == 1


async def test_error_rate_one_fails_everything(
    http: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    """With error_rate=1 every request is answered 5xx."""
    sim = await sim_factory(error_rate=1.0, seed=3)
    statuses = {(await call(http, sim, "GET", "/v2/whoami"))[0] for _ in range(8)}
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1


async def test_latency_delays_answers(http: aiohttp.ClientSession, sim_factory: SimFactory) -> None:
    """Injected latency holds each answer back by at least that long."""
    sim = await sim_factory(latency_ms=50)
    started = time.monotonic()
    status, _, _, _ = await call(http, sim, "GET", "/v2/whoami")
    assert status == 200
    assert time.monotonic() - started >= 0.05


async def test_journal_counts_requests(http: aiohttp.ClientSession, glider_sim: GliderSim) -> None:
    """The journal records every request as it arrived, with its final status."""
    await rebalance(http, glider_sim)
    await call(http, glider_sim, "GET", "/v2/whoami")
    assert glider_sim.requests("POST", "/rebalance") == 1
    assert glider_sim.requests("GET") == 1
    assert [r.status for r in glider_sim.chaos.journal] == [202, 200]


@pytest.mark.parametrize(
    ("segment", "strict", "expected"),
    [
        ("a%253Ab", True, ["a%3Ab"]),
        ("a%3Ab", True, ["a:b"]),
        ("a%3Ab", False, ["a:b", "a%3Ab"]),
        ("a:b", False, ["a:b"]),
    ],
)
def test_operation_id_candidates(segment: str, strict: bool, expected: list[str]) -> None:
    """A segment is decoded exactly once; lenient mode also tries it as sent."""
    assert operation_id_candidates(segment, strict=strict) == expected


def test_config_load_round_trips(tmp_path: Path) -> None:
    """A seed file written from a config loads back equal."""
    config = SimConfig.default().with_overrides(cooldown_s=1.5, failure_rate=0.25)
    seed = tmp_path / "seed.json"
    seed.write_text(config.model_dump_json())
    assert SimConfig.load(seed) == config


def test_cli_flags_override_the_seed(tmp_path: Path) -> None:
    """Command-line flags win over the seed file; unset flags keep it."""
    seed = tmp_path / "seed.json"
    seed.write_text(SimConfig.default().with_overrides(latency_ms=7).model_dump_json())
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["sim", "--seed-file", str(seed), "--op-duration", "2", "--failure-rate", "0.5"]
    )
    config = config_from_args(args)
    assert (config.op_duration_s, config.failure_rate, config.latency_ms) == (2.0, 0.5, 7)
    assert config.cooldown_s == SimConfig.default().cooldown_s


def test_banner_names_url_and_keys() -> None:
    """The banner says where the simulator listens and which keys open it."""
    line = banner("http://127.0.0.1:8090", SimConfig.default())
    assert "\n" not in line
    assert "http://127.0.0.1:8090/v2" in line
    assert ADMIN_KEY in line
    assert READONLY_KEY in line


def test_sim_command_serves_and_exits_0_on_sigterm() -> None:
    """``glider-relay sim --port 0`` prints its banner, answers, and stops cleanly on SIGTERM."""
    code = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
    with subprocess.Popen(
        [sys.executable, "-c", code, "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" listening on ")[1].split()[0]
        assert blocking_status(url + "/whoami") == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def blocking_status(url: str) -> int:
    """The status of a GET, without an event loop (the subprocess test is synchronous)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own loopback URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
