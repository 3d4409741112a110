"""What the client keeps of Glider's failed answers: never any part of a secret, over HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.core.redact import register_secrets, unregister_secrets
from relay.glider import CooldownActive, GliderError, RateLimited
from relay.glider.responses import MESSAGE_CHARS
from tests.fixtures.glider_script import PORTFOLIO, ScriptedGlider, ServerFactory, scripted_glider

KEY = "gldr_sk_SECRETKEY1234567890abcdef"
# Another environment's key, which the relay never registered.
FOREIGN_KEY = "gldr_sk_staging_0f1e2d3c4b5a"
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def leaks(text: str, secret: str, window: int = 5) -> list[str]:
    """Every ``window``-character piece of ``secret``'s private part found in ``text``."""
    private = secret.removeprefix("gldr_sk_")
    pieces = {private[i : i + window] for i in range(len(private) - window + 1)}
    return sorted(piece for piece in pieces if piece in text)


def seen(exc: GliderError) -> str:
    """Everything of an error that reaches records, Slack, webhooks, the admin API and logs."""
    return " ".join([str(exc), repr(exc), exc.message, exc.code or "", exc.request_id or ""])


@pytest.fixture(autouse=True)
def registered_key() -> Iterator[None]:
    register_secrets([KEY])
    yield
    unregister_secrets([KEY])


@pytest.fixture
async def glider(aiohttp_server: ServerFactory) -> ScriptedGlider:
    return await scripted_glider(aiohttp_server, "pf_proxy")


async def failure(glider: ScriptedGlider) -> GliderError:
    async with glider.client(KEY) as client:
        with pytest.raises(GliderError) as raised:
            await client.get_portfolio("pf_proxy")
    return raised.value


def proxy_page(offset: int, key: str = KEY) -> bytes:
    """An edge proxy's page that echoes the request's key with ``offset`` characters before it."""
    head = "<html>400 Bad Request: rejected by edge proxy; "
    padding = "." * max(0, offset - len(head) - len("x-api-key: "))
    return f"{head}{padding}x-api-key: {key}</html>".encode()


@pytest.mark.parametrize("offset", range(MESSAGE_CHARS - len(KEY) - 2, MESSAGE_CHARS + 2))
async def test_a_proxy_page_cut_through_the_key_keeps_none_of_it(
    glider: ScriptedGlider, offset: int
) -> None:
    """The key straddling the 200-character cut of a proxy's page: no part of it is kept."""
    glider.fail(PORTFOLIO, 400, proxy_page(offset))
    exc = await failure(glider)
    assert leaks(seen(exc), KEY) == []


@pytest.mark.parametrize("content_type", ["application/json", "text/html"])
async def test_a_foreign_glider_key_in_an_answer_is_redacted(
    glider: ScriptedGlider, content_type: str
) -> None:
    """A key-shaped token the relay never registered goes too, in a flat body or an envelope."""
    flat = json.dumps({"message": f"bad key {FOREIGN_KEY}"}).encode()
    glider.fail(PORTFOLIO, 401, flat, content_type)
    assert leaks(seen(await failure(glider)), FOREIGN_KEY) == []
    envelope = {"success": False, "error": {"code": FOREIGN_KEY, "message": FOREIGN_KEY}}
    glider.fail(PORTFOLIO, 400, json.dumps(envelope).encode(), "application/json")
    assert leaks(seen(await failure(glider)), FOREIGN_KEY) == []


async def test_the_client_log_line_of_a_failure_keeps_none_of_the_key(
    glider: ScriptedGlider, caplog: pytest.LogCaptureFixture
) -> None:
    """The WARNING a failed call logs carries the cut message, and no part of the key."""
    caplog.set_level(logging.WARNING, logger="relay.glider.client")
    glider.fail(PORTFOLIO, 502, proxy_page(MESSAGE_CHARS - len(KEY) + 4))
    await failure(glider)
    (record,) = [r for r in caplog.records if r.name == "relay.glider.client"]
    assert leaks(record.getMessage() + str(vars(record)), KEY) == []


@PROPERTY
@given(
    words=st.text(max_size=40).filter(lambda text: not leaks(text, KEY)),
    offset=st.integers(0, 2 * MESSAGE_CHARS),
    after=st.text(max_size=50).filter(lambda text: not leaks(text, KEY)),
    answer=st.tuples(st.sampled_from([400, 401, 403, 404, 429, 500, 502, 503]), st.booleans()),
)
async def test_no_answer_echoing_the_key_keeps_any_of_it(
    glider: ScriptedGlider, words: str, offset: int, after: str, answer: tuple[int, bool]
) -> None:
    """Any text around the key, at any offset, as a page or a flat JSON message: none kept."""
    status, as_json = answer
    text = f"{(words + '.' * offset)[:offset]}{KEY}{after}"
    body = json.dumps({"message": text}) if as_json else text
    glider.fail(PORTFOLIO, status, body.encode(), "text/plain")
    assert leaks(seen(await failure(glider)), KEY) == []


@pytest.mark.parametrize("wait", ["1e300", "999999999999", "86400000"])
async def test_an_absurd_retry_after_is_no_wait_at_all(
    aiohttp_server: ServerFactory, wait: str
) -> None:
    """A wait no cooldown can last (and that overflows a datetime) is read as none given."""
    glider = await scripted_glider(aiohttp_server, "pf_wait")
    glider.fail(PORTFOLIO, 429, json.dumps({"retryAfter": float(wait)}).encode(), "text/plain")
    async with glider.client(KEY) as client:
        with pytest.raises(RateLimited) as raised:
            await client.get_portfolio("pf_wait")
    assert raised.value.retry_after is None


async def test_an_absurd_retry_after_header_on_a_cooldown_is_no_wait(
    aiohttp_server: ServerFactory,
) -> None:
    """The header of a cooldown 429 is bounded the same way (the executor adds it to now)."""

    async def cooldown(request: web.Request) -> web.Response:
        envelope = {"success": False, "error": {"code": "API_429", "message": "cooldown"}}
        return web.json_response(envelope, status=429, headers={"Retry-After": "1e300"})

    app = web.Application()
    app.router.add_post("/v2/portfolios/{pf}/rebalance", cooldown)
    server = await aiohttp_server(app)
    glider = ScriptedGlider("pf_wait", url=str(server.make_url("/")))
    async with glider.client(KEY) as client:
        with pytest.raises(CooldownActive) as raised:
            await client.trigger_rebalance("pf_wait")
    assert raised.value.retry_after is None
