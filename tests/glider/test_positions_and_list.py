"""GET /v2/portfolios and GET /v2/portfolios/{id}/positions: simulator and client, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest

from relay.glider import BadRequest, GliderClient, MalformedResponse, NotFound
from relay.sim.config import ADMIN_KEY, PF_MAIN, PF_NO_SCHEDULE, PF_OTHER_TENANT, PF_ULID
from tests.fixtures.glider import GliderSim
from tests.fixtures.glider_script import ServerFactory, scripted_glider


async def test_positions_are_shaped_as_the_contract_says(glider_sim: GliderSim) -> None:
    """Decimal strings, assets with their smart account, a total equal to their sum."""
    async with aiohttp.ClientSession() as http:
        url = f"{glider_sim.url}/v2/portfolios/{PF_MAIN}/positions"
        async with http.get(url, headers={"x-api-key": ADMIN_KEY}) as response:
            assert response.status == 200
            body = await response.json()
    data = body["data"]
    assert body["success"] is True
    assert data["portfolioId"] == PF_MAIN
    assert data["warnings"] == []
    assert data["smartAccounts"][0]["accountId"].startswith("eip155:")
    values = [Decimal(a["valueUsd"]) for a in data["assets"]]
    assert sum(values) == Decimal(data["totalValueUsd"])
    assert values == sorted(values, reverse=True)
    for asset in data["assets"]:
        assert {"assetId", "smartAccountId", "symbol", "decimals", "balance", "balanceRaw"} <= set(
            asset
        )
        assert isinstance(asset["balance"], str)
        assert isinstance(asset["priceUsd"], str)


async def test_client_reads_positions_and_their_largest(glider_client: GliderClient) -> None:
    positions = await glider_client.get_positions(PF_MAIN)
    assert positions.portfolio_id == PF_MAIN
    assert positions.total_value_usd is not None
    largest = positions.largest(2)
    assert len(largest) == 2
    assert (largest[0].value_usd or 0) >= (largest[1].value_usd or 0)


async def test_positions_of_another_tenant_are_not_found(glider_client: GliderClient) -> None:
    with pytest.raises(NotFound):
        await glider_client.get_positions(PF_OTHER_TENANT)


async def test_list_pages_through_every_portfolio_of_the_tenant(
    glider_client: GliderClient,
) -> None:
    """Cursor paging visits each of the tenant's portfolios once, and never another's."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await glider_client.list_portfolios(limit=2, cursor=cursor)
        assert len(page.portfolios) <= 2
        seen += [p.portfolio_id for p in page.portfolios]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert len(seen) == len(set(seen)) == 4
    assert PF_OTHER_TENANT not in seen


async def test_list_filters_by_status_and_drops_unscheduled(glider_client: GliderClient) -> None:
    paused = await glider_client.list_portfolios(status="paused")
    assert [p.portfolio_id for p in paused.portfolios] == [PF_ULID]
    active = await glider_client.list_portfolios(status="active")
    assert PF_NO_SCHEDULE not in {p.portfolio_id for p in active.portfolios}
    assert all(p.schedule and p.schedule.status == "active" for p in active.portfolios)


@pytest.mark.parametrize(
    "query", [{"status": "archived"}, {"limit": 0}, {"limit": 201}, {"cursor": "%%%"}]
)
async def test_list_refuses_a_bad_query(
    glider_client: GliderClient, query: dict[str, object]
) -> None:
    with pytest.raises(BadRequest):
        await glider_client.list_portfolios(**query)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "wire"),
    [
        ("valueUsd", "1E+100000000"),
        ("priceUsd", "-1e31"),
        ("balance", "1E-400"),
        ("valueUsd", 1e300),
    ],
)
async def test_positions_with_an_absurd_amount_are_malformed(
    aiohttp_server: ServerFactory, field: str, wire: object
) -> None:
    """An amount no portfolio holds is a clear MalformedResponse, not a value to format."""
    glider = await scripted_glider(aiohttp_server, "pf_big")
    glider.positions["assets"][0][field] = wire
    async with glider.client(ADMIN_KEY) as client:
        with pytest.raises(MalformedResponse, match=f"assets.0.{field}"):
            await client.get_positions("pf_big")


async def test_an_absurd_total_is_malformed(aiohttp_server: ServerFactory) -> None:
    glider = await scripted_glider(aiohttp_server, "pf_big")
    glider.positions["totalValueUsd"] = "9.99E+999999999"
    async with glider.client(ADMIN_KEY) as client:
        with pytest.raises(MalformedResponse, match="totalValueUsd"):
            await client.get_positions("pf_big")


async def test_times_without_an_offset_arrive_as_utc(aiohttp_server: ServerFactory) -> None:
    """A schedule time Glider sends without ``Z`` is read as UTC, in the detail and the list."""
    glider = await scripted_glider(aiohttp_server, "pf_naive")
    glider.schedule(nextDueAt="2026-11-22T12:00:00", lastRebalanceAt="2026-11-21T12:00:00.250")
    async with glider.client(ADMIN_KEY) as client:
        detail = await client.get_portfolio("pf_naive")
        (listed,) = (await client.list_portfolios()).portfolios
    for portfolio in (detail, listed):
        assert portfolio.schedule is not None
        assert portfolio.schedule.next_due_at == datetime(2026, 11, 22, 12, tzinfo=UTC)
        assert portfolio.schedule.last_rebalance_at == datetime(
            2026, 11, 21, 12, 0, 0, 250_000, tzinfo=UTC
        )
