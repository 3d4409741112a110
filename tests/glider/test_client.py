"""GliderClient against the simulator (and a few hand-made bad servers), over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from relay import tracing
from relay.core.trace import TraceParent, parse
from relay.glider import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderClient,
    GliderError,
    GliderTimeout,
    GliderUnavailable,
    MalformedResponse,
    NotFound,
    OperationState,
    RateLimited,
    ScheduleStatus,
    ServerError,
    Unauthorized,
)
from relay.glider.client import OPERATION, api_root
from relay.sim.clock import FakeClock
from relay.sim.config import (
    ADMIN_KEY,
    OTHER_TENANT_KEY,
    PF_MAIN,
    PF_NO_SCHEDULE,
    PF_OTHER_TENANT,
    PF_SHORT,
    PF_ULID,
    READONLY_KEY,
)
from tests.fixtures.glider import GliderSim, SimFactory, free_port

ServerFactory = Callable[..., Awaitable[TestServer]]
REBALANCE_PATH = "/rebalance"


class CountingLimiter:
    def __init__(self) -> None:
        self.acquired = 0

    async def acquire(self) -> None:
        self.acquired += 1


async def test_rebalance_then_poll_to_completion(
    glider_client: GliderClient, glider_sim: GliderSim
) -> None:
    """A rebalance is accepted and its operation is polled through to completed."""
    accepted = await glider_client.trigger_rebalance(PF_MAIN)
    assert accepted.submitted_at == glider_sim.clock()
    seen = []
    for _ in range(5):
        operation = await glider_client.get_operation(PF_MAIN, accepted.operation_id)
        seen.append(operation.state)
        glider_sim.clock.advance(1)
    assert seen[0] is OperationState.ACCEPTED
    assert OperationState.RUNNING in seen
    assert seen[-1] is OperationState.COMPLETED
    assert operation.operation_id == accepted.operation_id
    assert operation.finished_at == accepted.submitted_at + timedelta(seconds=3)


async def test_operation_id_is_encoded_for_the_strict_simulator(
    glider_client: GliderClient, glider_sim: GliderSim
) -> None:
    """The id's ``:`` and ``%`` reach the strict simulator encoded exactly once."""
    assert glider_sim.config.strict_encoding
    accepted = await glider_client.trigger_rebalance(PF_SHORT)
    assert "%3A" in accepted.operation_id
    operation = await glider_client.get_operation(PF_SHORT, accepted.operation_id)
    assert operation.operation_id == accepted.operation_id
    sent = glider_sim.chaos.journal[-1].path
    assert sent.endswith("rebalance%3Aa1b2c3d4%3Aa1b2c3d4%253Amanual%253Areq_" + sent[-26:])


def test_url_encoding_of_path_segments(glider_client: GliderClient) -> None:
    """Each id is one segment: ``%`` → ``%25``, ``:`` → ``%3A``, ``/`` → ``%2F``."""
    url = glider_client.url_for(OPERATION, {"portfolioId": "p", "operationId": "a:b%3Ac/d"})
    assert url.raw_path == "/v2/portfolios/p/operations/a%3Ab%253Ac%2Fd"
    with pytest.raises(ValueError, match="portfolioId"):
        glider_client.url_for(OPERATION, {"portfolioId": "", "operationId": "x"})


@pytest.mark.parametrize(
    "base",
    ["https://api.glider.fi", "https://api.glider.fi/", "https://api.glider.fi/v2/"],
)
def test_base_url_with_or_without_v2(base: str) -> None:
    """The base URL may be given with a trailing slash or the /v2 prefix."""
    assert api_root(base) == "https://api.glider.fi"


def test_base_url_must_be_http() -> None:
    """A base URL that is not http(s) is refused at construction."""
    with pytest.raises(ValueError, match="http"):
        api_root("ftp://api.glider.fi")


async def test_in_flight_rebalance_returns_the_same_operation(
    glider_client: GliderClient, glider_sim: GliderSim
) -> None:
    """A second trigger while one runs returns the same id and original submittedAt."""
    first = await glider_client.trigger_rebalance(PF_MAIN)
    glider_sim.clock.advance(1)
    second = await glider_client.trigger_rebalance(PF_MAIN)
    assert second == first


async def test_invalid_key_is_unauthorized(glider_sim: GliderSim) -> None:
    """An unknown key raises Unauthorized with Glider's code and trace ids."""
    async with glider_sim.client("gldr_sk_not_a_key") as client:
        with pytest.raises(Unauthorized) as raised:
            await client.get_portfolio(PF_MAIN)
    error = raised.value
    assert (error.status, error.code, error.retryable) == (401, "API_102", False)
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.correlation_id is not None
    assert error.correlation_id.startswith("corr_")
    assert glider_sim.requests("GET") == 1


async def test_missing_scope_is_forbidden(glider_sim: GliderSim) -> None:
    """A read-only key cannot rebalance: Forbidden API_104, nothing started."""
    async with glider_sim.client(READONLY_KEY) as client:
        with pytest.raises(Forbidden) as raised:
            await client.trigger_rebalance(PF_MAIN)
        assert (await client.get_portfolio(PF_MAIN)).portfolio_id == PF_MAIN
    assert raised.value.code == "API_104"
    assert glider_sim.state.operations(PF_MAIN) == []


async def test_cross_tenant_is_not_found_like_a_missing_portfolio(
    glider_client: GliderClient,
) -> None:
    """Another tenant's portfolio raises NotFound with the same message as a missing one."""
    with pytest.raises(NotFound) as foreign:
        await glider_client.get_portfolio(PF_OTHER_TENANT)
    with pytest.raises(NotFound) as missing:
        await glider_client.trigger_rebalance("pf_does_not_exist")
    assert foreign.value.code == missing.value.code == "API_006"
    assert foreign.value.message == f"Portfolio with ID {PF_OTHER_TENANT} not found"
    assert missing.value.message == "Portfolio with ID pf_does_not_exist not found"


async def test_unknown_operation_is_not_found(glider_client: GliderClient) -> None:
    """An operation id that is not the portfolio's raises NotFound (not retried)."""
    with pytest.raises(NotFound) as raised:
        await glider_client.get_operation(PF_MAIN, "rebalance:nope")
    assert raised.value.attempts == 1


async def test_start_without_schedule_is_bad_request(glider_client: GliderClient) -> None:
    """start/stop on a portfolio with no schedule raise BadRequest."""
    with pytest.raises(BadRequest) as raised:
        await glider_client.start(PF_NO_SCHEDULE)
    assert raised.value.status == 400
    with pytest.raises(BadRequest):
        await glider_client.stop(PF_NO_SCHEDULE)


async def test_start_stop_are_idempotent(
    glider_client: GliderClient, glider_sim: GliderSim
) -> None:
    """stop twice stays paused; start resets nextDueAt once, then changes nothing."""
    first = await glider_client.stop(PF_MAIN)
    assert first.schedule is not None
    assert first.schedule.status is ScheduleStatus.PAUSED
    assert await glider_client.stop(PF_MAIN) == first
    glider_sim.clock.advance(10)
    resumed = await glider_client.start(PF_MAIN)
    assert resumed.schedule is not None
    assert resumed.schedule.status is ScheduleStatus.ACTIVE
    assert resumed.schedule.next_due_at == glider_sim.clock()
    glider_sim.clock.advance(10)
    assert await glider_client.start(PF_MAIN) == resumed


async def test_cooldown_is_raised_with_retry_after_and_not_retried(
    sim_factory: SimFactory,
) -> None:
    """A too-early rebalance raises CooldownActive carrying Retry-After; it is sent once."""
    sim = await sim_factory(op_duration_s=0, cooldown_s=45)
    async with sim.client() as client:
        await client.trigger_rebalance(PF_MAIN)
        with pytest.raises(CooldownActive) as raised:
            await client.trigger_rebalance(PF_MAIN)
    assert (raised.value.status, raised.value.code) == (429, "API_004")
    assert raised.value.retry_after == 45
    assert not raised.value.retryable
    assert sim.requests("POST", REBALANCE_PATH) == 2
    assert sim.clock.sleeps == []


async def test_ip_rate_limit_on_get_waits_retry_after_then_succeeds(
    sim_factory: SimFactory,
) -> None:
    """A flat 429 on a GET is retried after exactly Retry-After seconds."""
    sim = await sim_factory(ip_rate_limit_per_s=1)
    async with sim.client() as client:
        await client.get_portfolio(PF_MAIN)
        detail = await client.get_portfolio(PF_MAIN)
    assert detail.portfolio_id == PF_MAIN
    assert sim.clock.sleeps == [1.0]
    assert [r.status for r in sim.chaos.journal] == [200, 429, 200]


async def test_ip_rate_limit_on_rebalance_is_raised(sim_factory: SimFactory) -> None:
    """A flat 429 on a rebalance raises RateLimited with the wait and is not re-sent."""
    sim = await sim_factory(ip_rate_limit_per_s=1)
    async with sim.client() as client:
        await client.whoami()
        with pytest.raises(RateLimited) as raised:
            await client.trigger_rebalance(PF_MAIN)
    assert (raised.value.retry_after, raised.value.code) == (1.0, None)
    assert raised.value.request_id is not None
    assert sim.requests("POST") == 1
    assert sim.clock.sleeps == []


async def test_get_retries_5xx_with_backoff(
    glider_client: GliderClient, glider_sim: GliderSim
) -> None:
    """Two 5xx then success: the GET is sent three times with capped backoff waits."""
    glider_sim.chaos.fail_next(1, status=500)
    glider_sim.chaos.fail_next(1, status=503)
    detail = await glider_client.get_portfolio(PF_MAIN)
    assert detail.portfolio_id == PF_MAIN
    assert glider_sim.requests("GET") == 3
    assert len(glider_sim.clock.sleeps) == 2
    assert all(0 <= wait <= 30 for wait in glider_sim.clock.sleeps)


async def test_get_gives_up_after_max_retries(glider_sim: GliderSim) -> None:
    """A GET that keeps failing raises ServerError after 1 + max_retries attempts."""
    glider_sim.chaos.fail_next(10, status=502)
    async with glider_sim.client(max_retries=2) as client:
        with pytest.raises(ServerError) as raised:
            await client.get_portfolio(PF_MAIN)
    assert (raised.value.status, raised.value.attempts) == (502, 3)
    assert raised.value.code is None
    assert "Bad Gateway" in raised.value.message
    assert glider_sim.requests("GET") == 3


async def test_retry_after_beyond_the_cap_is_not_waited(sim_factory: SimFactory) -> None:
    """A Retry-After longer than max_retry_wait is raised at once for the caller to schedule."""
    sim = await sim_factory(ip_rate_limit_per_s=1)
    async with sim.client(max_retry_wait=0.5) as client:
        await client.whoami()
        with pytest.raises(RateLimited):
            await client.whoami()
    assert sim.clock.sleeps == []


@pytest.mark.parametrize("after", [False, True])
async def test_rebalance_is_never_resent_after_a_5xx(glider_sim: GliderSim, after: bool) -> None:
    """A 5xx on a rebalance is raised, never re-sent: the run may have started anyway."""
    glider_sim.chaos.fail_next(1, status=500, after=after)
    async with glider_sim.client() as client:
        with pytest.raises(ServerError) as raised:
            await client.trigger_rebalance(PF_MAIN)
    assert raised.value.code == "API_000"
    assert glider_sim.requests("POST", REBALANCE_PATH) == 1
    assert len(glider_sim.state.operations(PF_MAIN)) == (1 if after else 0)


async def test_rebalance_is_never_resent_after_a_timeout(sim_factory: SimFactory) -> None:
    """A rebalance that times out raises GliderTimeout after exactly one request."""
    sim = await sim_factory(latency_ms=2000)
    async with sim.client(timeout=0.2) as client:
        with pytest.raises(GliderTimeout) as raised:
            await client.trigger_rebalance(PF_MAIN)
    assert raised.value.retryable
    assert sim.requests("POST", REBALANCE_PATH) == 1
    assert sim.clock.sleeps == []


async def test_get_timeout_is_retried(sim_factory: SimFactory) -> None:
    """A GET slower than the timeout is retried, then GliderTimeout."""
    sim = await sim_factory(latency_ms=2000)
    async with sim.client(timeout=0.2, max_retries=1) as client:
        with pytest.raises(GliderTimeout) as raised:
            await client.get_portfolio(PF_MAIN)
    assert raised.value.attempts == 2
    assert sim.requests("GET") == 2
    assert len(sim.clock.sleeps) == 1


@pytest.mark.parametrize("method", ["get_portfolio", "trigger_rebalance", "stop"])
async def test_connection_refused_is_retried_for_every_call(method: str) -> None:
    """Nothing listening: nothing was sent, so even a rebalance may be retried."""
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    url = f"http://127.0.0.1:{free_port()}"
    async with GliderClient(url, SecretStr(ADMIN_KEY), sleep=record, max_retries=2) as client:
        with pytest.raises(GliderUnavailable) as raised:
            await getattr(client, method)(PF_MAIN)
    assert raised.value.request_sent is False
    assert raised.value.attempts == 3
    assert len(sleeps) == 2


async def test_rate_limiter_is_awaited_before_every_attempt(glider_sim: GliderSim) -> None:
    """The shared limiter is asked before each request, retries included."""
    limiter = CountingLimiter()
    glider_sim.chaos.fail_next(1, status=503)
    async with glider_sim.client(rate_limiter=limiter) as client:
        await client.get_portfolio(PF_MAIN)
        await client.whoami()
    assert limiter.acquired == 3


async def test_legacy_field_names_parse(sim_factory: SimFactory) -> None:
    """Against the older field shape the client reads the same attributes."""
    sim = await sim_factory(legacy_fields=True)
    async with sim.client() as client:
        detail = await client.stop(PF_MAIN)
        who = await client.whoami()
    assert detail.owner_account_id is not None
    assert detail.owner_account_id.startswith("eip155:0")
    assert len(detail.smart_accounts) == 1
    assert detail.schedule is not None
    assert detail.schedule.status is ScheduleStatus.PAUSED
    assert who.tenant_email == "ops@acme.example"


async def test_whoami_reports_tenant_and_scopes(sim_factory: SimFactory) -> None:
    """whoami answers with the key's tenant."""
    sim = await sim_factory()
    async with sim.client(OTHER_TENANT_KEY) as client:
        who = await client.whoami()
    assert who.tenant_name == "globex"
    assert "portfolios:write" in who.scopes


async def test_operation_through_awaiting_user_to_cancelled(
    glider_client: GliderClient, glider_sim: GliderSim
) -> None:
    """Forced outcome: the client sees awaiting_user, then cancelled with Glider's reason."""
    glider_sim.state.force_outcome(PF_ULID, "cancelled", detour="awaiting_user", error="no sig")
    accepted = await glider_client.trigger_rebalance(PF_ULID)
    states = []
    for _ in range(7):
        states.append((await glider_client.get_operation(PF_ULID, accepted.operation_id)).state)
        glider_sim.clock.advance(0.5)
    assert OperationState.AWAITING_USER in states
    final = await glider_client.get_operation(PF_ULID, accepted.operation_id)
    assert (final.state, final.error) == (OperationState.CANCELLED, "no sig")
    assert final.is_terminal
    assert final.finished_at is not None


async def test_given_session_is_used_and_left_open(glider_sim: GliderSim) -> None:
    """A caller's session is borrowed, not closed."""
    async with aiohttp.ClientSession() as session:
        async with GliderClient(glider_sim.url, SecretStr(ADMIN_KEY), session=session) as client:
            await client.whoami()
        assert not session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.whoami()


def bad_server_app(
    status: int, body: bytes, content_type: str = "application/json"
) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>maintenance</html>", "not a v2 success envelope"),
        (b'{"operationId": "x"}', "not a v2 success envelope"),
        (b'{"success": true, "data": {"portfolioId": "p"}}', "unexpected Operation"),
        (b'{"success": true, "data": {"operationId": "o", "portfolioId": "p", "state": 3}}', ""),
        (b"[" * 100_000, "not a v2 success envelope"),
    ],
)
async def test_malformed_success_bodies(
    aiohttp_server: ServerFactory, body: bytes, message: str
) -> None:
    """A 200 that is not a valid operation raises MalformedResponse (never retried)."""
    server = await aiohttp_server(bad_server_app(200, body))
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async with GliderClient(str(server.make_url("/")), SecretStr(ADMIN_KEY), sleep=record) as c:
        if not message:
            # An integer state is odd but parses: as an unknown, non-terminal state.
            assert (await c.get_operation("p", "o")).state is OperationState.UNKNOWN
            return
        with pytest.raises(MalformedResponse, match=message):
            await c.get_operation("p", "o")
    assert sleeps == []


async def test_oversized_body_is_refused(aiohttp_server: ServerFactory) -> None:
    """A body over the cap is not read into memory: MalformedResponse."""
    padding = b" " * 5000
    server = await aiohttp_server(bad_server_app(200, b'{"success": true, "data": {}}' + padding))
    url = str(server.make_url("/"))
    async with GliderClient(url, SecretStr(ADMIN_KEY), max_body_bytes=1024) as client:
        with pytest.raises(MalformedResponse, match="too large"):
            await client.whoami()


async def test_unexpected_status_is_a_plain_glider_error(aiohttp_server: ServerFactory) -> None:
    """A status outside the contract (409) raises the base GliderError with its code."""
    body = b'{"success": false, "error": {"code": "API_007", "message": "in progress"}}'
    server = await aiohttp_server(bad_server_app(409, body))
    async with GliderClient(str(server.make_url("/")), SecretStr(ADMIN_KEY)) as client:
        with pytest.raises(GliderError) as raised:
            await client.get_portfolio("p")
    assert type(raised.value) is GliderError
    assert str(raised.value) == "409 API_007 in progress"


async def test_api_key_never_reaches_logs_or_output(
    sim_factory: SimFactory,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Failures are logged with route, status and trace ids, never with the key."""
    secret = "gldr_sk_live_do_not_log_9f8e7d"
    sim = await sim_factory(latency_ms=0)
    caplog.set_level(logging.DEBUG)
    sim.chaos.fail_next(2, status=503)
    errors: list[Exception] = []
    for key in (secret, ADMIN_KEY):
        async with sim.client(key, max_retries=1) as client:
            for call in (client.get_portfolio(PF_MAIN), client.trigger_rebalance(PF_MAIN)):
                try:
                    await call
                except Exception as exc:
                    errors.append(exc)
    refused = GliderClient(f"http://127.0.0.1:{free_port()}", SecretStr(secret), max_retries=0)
    async with refused:
        with pytest.raises(GliderUnavailable) as unavailable:
            await refused.whoami()
    errors.append(unavailable.value)
    out, err = capsys.readouterr()
    text = caplog.text + out + err + "".join(f"{e!s}{e!r}" for e in errors)
    assert len(errors) >= 3
    assert secret not in text
    assert ADMIN_KEY not in text
    failures = [vars(r) for r in caplog.records if r.name == "relay.glider.client"]
    assert {f["glider_status"] for f in failures} == {503, 401, None}
    unauthorized = next(f for f in failures if f["glider_status"] == 401)
    assert unauthorized["glider_route"] == "/v2/portfolios/{portfolioId}/rebalance"
    assert unauthorized["glider_request_id"].startswith("req_")
    assert unauthorized["glider_correlation_id"].startswith("corr_")
    assert all(PF_MAIN not in r.getMessage() for r in caplog.records)


async def test_flat_429_without_header_uses_the_body_wait(aiohttp_server: ServerFactory) -> None:
    """With no Retry-After header, the flat body's retryAfter and ids are used."""
    body = (
        b'{"error": "Too Many Requests", "message": "Rate limit exceeded. Try again in 2 seconds.",'
        b' "retryAfter": 2, "correlationId": "corr_b", "requestId": "req_b"}'
    )
    server = await aiohttp_server(bad_server_app(429, body))
    async with GliderClient(
        str(server.make_url("/")), SecretStr(ADMIN_KEY), max_retries=0
    ) as client:
        with pytest.raises(RateLimited) as raised:
            await client.get_portfolio("p")
    error = raised.value
    assert (error.retry_after, error.request_id, error.correlation_id) == (2, "req_b", "corr_b")
    assert error.message == "Rate limit exceeded. Try again in 2 seconds."


async def test_envelope_429_off_the_rebalance_route_is_a_rate_limit(
    aiohttp_server: ServerFactory,
) -> None:
    """Only a rebalance can be in cooldown: an envelope 429 on a GET is RateLimited."""
    body = b'{"success": false, "error": {"code": "API_004", "message": "slow down"}}'
    server = await aiohttp_server(bad_server_app(429, body))
    async with GliderClient(
        str(server.make_url("/")), SecretStr(ADMIN_KEY), max_retries=0
    ) as client:
        with pytest.raises(RateLimited) as raised:
            await client.get_portfolio("p")
    assert raised.value.code == "API_004"


async def test_oversized_5xx_body_is_still_a_server_error(aiohttp_server: ServerFactory) -> None:
    """A huge error page keeps its status meaning (retryable 5xx), without its body."""
    server = await aiohttp_server(bad_server_app(503, b"x" * 5000, "text/html"))
    url = str(server.make_url("/"))
    async with GliderClient(url, SecretStr(ADMIN_KEY), max_body_bytes=1024, max_retries=0) as c:
        with pytest.raises(ServerError) as raised:
            await c.get_portfolio("p")
    assert raised.value.message == "HTTP 503"
    assert raised.value.retryable


async def test_each_request_is_a_span_of_the_callers_trace(aiohttp_server: ServerFactory) -> None:
    """Every attempt (retries too) sends a traceparent: the caller's trace, a new span each."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        if len(seen) == 1:
            return web.Response(status=503)
        return web.json_response({"success": True, "data": {"scopes": ["portfolios:read"]}})

    app = web.Application()
    app.router.add_get("/v2/whoami", handler)
    server = await aiohttp_server(app)
    caller = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    no_wait = FakeClock().sleep
    async with GliderClient(str(server.make_url("/")), SecretStr(ADMIN_KEY), sleep=no_wait) as c:
        with tracing.span("caller", caller) as span:
            await c.whoami()
    sent = [parse(header) for header in seen]
    assert len(sent) == 2
    assert all(s is not None and s.trace_id == caller.trace_id for s in sent)
    assert len({s.span_id for s in sent if s} | {span.span_id, caller.span_id}) == 4
