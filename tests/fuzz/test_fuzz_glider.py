"""Fuzzing the Glider client with hostile answers: only typed GliderErrors, sane retry waits.

A local aiohttp server answers every request with the drawn status, headers and
body: garbage bytes, JSON of the wrong types, envelopes with fields missing or
mistyped, bodies over the size cap (with and without a Content-Length). Each
client call must return the route's model (on a 2xx only) or raise a
:class:`GliderError` subclass that matches the status; every wait before a
retry must be a finite number of seconds within the client's cap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from relay.glider.client import GliderClient
from relay.glider.errors import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderError,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)
from relay.glider.models import Operation, PortfolioDetail, RebalanceAccepted, Whoami
from tests.fuzz.support import FUZZ, Tally

EXAMPLES = 800
CAP = 8 * 1024  # the client's body cap in this test: "huge" stays cheap
MAX_WAIT = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    chunked: bool


@dataclass
class Script:
    """What the fake Glider answers right now (set per example)."""

    answer: Answer = field(default_factory=lambda: Answer(200, {}, b"{}", False))


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
DATES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2026-11-22T12:00:00.000Z", "yesterday", "", "9999-99-99T99:99:99Z"]),
    st.integers(),
)
STATES = st.sampled_from(["accepted", "running", "completed", "FAILED", " cancelled ", "weird"])


def _some(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with any subset of ``fields``, each a plausible value or any JSON value."""
    return st.fixed_dictionaries({}, optional={k: v | VALUES for k, v in fields.items()})


OPERATION = _some(
    operationId=st.text(max_size=30),
    portfolioId=st.text(max_size=30),
    state=STATES,
    kind=st.just("rebalance"),
    createdAt=DATES,
    finishedAt=DATES,
    error=st.text(max_size=30),
)
SCHEDULE = _some(status=st.sampled_from(["active", "PAUSED", "gone"]), nextDueAt=DATES)
PORTFOLIO = _some(
    portfolioId=st.text(max_size=30),
    schedule=SCHEDULE,
    smartAccounts=st.lists(_some(accountId=st.text(max_size=20)), max_size=3),
    vaultAccountIds=st.lists(st.text(max_size=20) | VALUES, max_size=3),
    strategyVersion=st.integers(),
)
ACCEPTED = _some(operationId=st.text(max_size=30), submittedAt=DATES)
WHOAMI = _some(tenantName=st.text(max_size=20), scopes=st.lists(st.text(max_size=10)))
ENVELOPES = st.one_of(
    st.fixed_dictionaries(
        {"success": st.sampled_from([True, False, "true", 1, None])},
        optional={"data": st.one_of(OPERATION, PORTFOLIO, ACCEPTED, WHOAMI, VALUES)},
    ),
    st.fixed_dictionaries(
        {"success": st.sampled_from([False, True, "false"])},
        optional={"error": _some(code=st.text(max_size=10), message=st.text(), details=VALUES)},
    ),
    VALUES,
)
# The per-IP limiter's flat 429 body; retryAfter may be NaN, infinite or negative.
FLAT = _some(
    error=st.text(max_size=20),
    message=st.text(max_size=40),
    retryAfter=st.floats(),
    requestId=st.text(max_size=20),
    correlationId=st.text(max_size=20),
).map(lambda value: json.dumps(value).encode())
BODIES = st.one_of(
    ENVELOPES.map(lambda value: json.dumps(value).encode()),  # NaN and Infinity included
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"null", b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"1" * 5000]),
    st.integers(CAP + 1, CAP * 4).map(lambda n: b'{"success":true,"data":"' + b"x" * n + b'"}'),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": st.one_of(
            HEADER_TEXT,
            st.integers(-100, 10**6).map(str),
            st.floats().map(str),
            st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]),
        ),
        "X-Request-Id": HEADER_TEXT,
        "X-Correlation-Id": HEADER_TEXT,
        "Content-Type": st.sampled_from(["application/json", "text/html", "x/y; charset=zz"]),
    },
)
STATUSES = st.one_of(
    st.sampled_from([200, 202, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
    st.integers(200, 599),
)
# A success envelope every route's model accepts (each ignores the others' fields).
VALID = st.fixed_dictionaries(
    {
        "operationId": st.text(min_size=1, max_size=30),
        "portfolioId": st.text(max_size=30),
        "state": STATES,
        "submittedAt": st.datetimes().map(lambda d: d.isoformat() + "Z"),
    },
    optional={"schedule": SCHEDULE, "extra": VALUES, "scopes": st.lists(st.text(max_size=5))},
).map(lambda data: json.dumps({"success": True, "data": data}).encode())
ANSWERS = st.one_of(
    st.builds(Answer, STATUSES, HEADERS, BODIES, st.booleans()),
    st.builds(Answer, st.sampled_from([200, 202]), HEADERS, VALID, st.booleans()),
    st.builds(Answer, st.sampled_from([429, 503]), HEADERS, FLAT | BODIES, st.booleans()),
)

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
Call = Callable[[GliderClient], Awaitable[BaseModel]]
CALLS: list[tuple[str, Call, type[BaseModel]]] = [
    ("rebalance", lambda c: c.trigger_rebalance("pf_1"), RebalanceAccepted),
    ("start", lambda c: c.start("pf_1"), PortfolioDetail),
    ("stop", lambda c: c.stop("pf_1"), PortfolioDetail),
    ("portfolio", lambda c: c.get_portfolio("pf_1"), PortfolioDetail),
    ("operation", lambda c: c.get_operation("pf_1", "rebalance:pf_1"), Operation),
    ("whoami", lambda c: c.whoami(), Whoami),
]
_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound}


async def _answer(script: Script, request: web.Request) -> web.StreamResponse:
    answer = script.answer
    body = b"" if answer.status in (204, 304) else answer.body
    if not answer.chunked:
        return web.Response(status=answer.status, headers=answer.headers, body=body)
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(body)
    await response.write_eof()
    return response


@pytest.fixture
async def hostile_glider(aiohttp_server: AiohttpServer) -> tuple[Script, str]:
    """A local server answering whatever its script says; its base URL."""
    script = Script()
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _answer(script, request)

    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app)
    return script, str(server.make_url("/"))


def _expected(status: int) -> tuple[type[GliderError], ...]:
    if 200 <= status < 300:
        return (MalformedResponse,)
    if status == 429:
        return (RateLimited, CooldownActive)
    if status >= 500:
        return (ServerError,)
    return (_BY_STATUS.get(status, GliderError),)


@pytest.mark.cases(EXAMPLES, "returned", "MalformedResponse", "ServerError", "RateLimited")
@settings(FUZZ, max_examples=EXAMPLES)
@given(answer=ANSWERS, call=st.sampled_from(CALLS))
async def test_any_answer_is_a_model_or_a_typed_error(
    tally: Tally,
    hostile_glider: tuple[Script, str],
    answer: Answer,
    call: tuple[str, Call, type[BaseModel]],
) -> None:
    """Any answer: the route's model on a 2xx, else the GliderError its status means."""
    script, base_url = hostile_glider
    script.answer = answer
    _, invoke, model = call
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with GliderClient(
        base_url,
        SecretStr("gldr_sk_fuzz"),
        max_retries=2,
        max_retry_wait=MAX_WAIT,
        max_body_bytes=CAP,
        sleep=sleep,
    ) as client:
        outcome: BaseModel | GliderError
        try:
            outcome = await invoke(client)
        except GliderError as exc:
            outcome = exc
    if isinstance(outcome, GliderError):
        tally.add(type(outcome).__name__)
        assert isinstance(outcome, _expected(answer.status)), (type(outcome), answer.status)
        assert outcome.status == answer.status
        assert outcome.retry_after is None or 0 <= outcome.retry_after < math.inf
    else:
        tally.add("returned")
        assert 200 <= answer.status < 300
        assert isinstance(outcome, model)
    assert all(0 <= wait <= MAX_WAIT for wait in waits), waits
