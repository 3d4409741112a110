"""Fuzzing POST /slack/events: forged requests change nothing; signed ones queue only valid ones.

Unsigned, mis-signed, stale or malformed requests (random bodies, content types,
timestamps and signatures) must get 401 with no side effect: the Redis key count,
the command stream and the fake Slack are untouched. Correctly signed slash
commands with random text and fields must get a 200 ack (usage, refusal or
queued) and put on the stream at most one command, and only a valid one: the
command's action, a portfolio id that is the text's first word, an allowed user.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.signature import is_ssl_check
from relay.core.commands import PORTFOLIO_ID_RE, QueuedCommand
from relay.store import keys
from relay.store.connection import text_map
from tests.fixtures.slack import SIGNING_SECRET, slack_signature
from tests.fixtures.web import WebFactory, WebHarness
from tests.fuzz.support import FUZZ, Tally

EXAMPLES = 500
ALLOWED = ("U1", "U2")  # web_factory's BOT_ALLOWED_USERS
ACTIONS = {"/rebalance": "rebalance", "/pause": "pause", "/resume": "resume"}

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
FIELD_NAMES = st.sampled_from(
    ["command", "text", "user_id", "team_id", "channel_id", "response_url", "trigger_id", "payload"]
)
FORMS = st.dictionaries(FIELD_NAMES | st.text(max_size=10), st.text(max_size=60), max_size=8)
BODIES = st.one_of(
    FORMS.map(lambda form: urlencode(form).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"{",
            b"payload=%7B",
            b'{"type": "url_verification", "challenge": "x"}',
            b"payload=" + urlencode({"x": '{"type": "block_actions"}'}).encode(),
            b"command=%2Frebalance&text=pf_1&user_id=U1",
            b"ssl_check=1&token=legacy",
            b"ssl_check=1&payload=%7B",
        ]
    ),
)
CONTENT_TYPES = st.sampled_from(
    [None, "application/x-www-form-urlencoded", "application/json", "text/plain", "x/y"]
)
# Anything but a fresh, well-formed timestamp signed with the right secret.
STALE = st.integers(301, 10**7).map(lambda age: str(int(time.time()) - age))
TIMESTAMPS = st.one_of(
    st.none(),
    st.just("now"),
    STALE,
    PRINTABLE,
    st.sampled_from(["", "abc", "1e3", " 12", "-1", "9" * 30, "0x10"]),
)
SIGNATURES = st.one_of(
    st.none(),
    PRINTABLE,
    st.binary(min_size=32, max_size=32).map(lambda raw: "v0=" + raw.hex()),
    st.just("right-secret-wrong-body"),
    st.just("wrong-secret"),
)


def _signature(kind: str | None, body: bytes, timestamp: str) -> str | None:
    """Turn the drawn signature kind into a header value that must not verify."""
    if kind == "wrong-secret":
        return "v0=" + _hmac("another-secret", timestamp, body)
    if kind == "right-secret-wrong-body":
        return "v0=" + _hmac(SIGNING_SECRET, timestamp, body + b"&x=1")
    return kind


def _hmac(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def _footprint(web: WebHarness) -> tuple[int, int, int]:
    """What a request could change: Redis key count, stream length, Slack calls."""
    redis: aioredis.Redis = web.redis
    return await redis.dbsize(), await redis.xlen(keys.COMMAND_STREAM), len(web.slack.calls)


@pytest.fixture
async def web(web_factory: WebFactory, real_redis: aioredis.Redis) -> WebHarness:
    """The web app on the real Redis, served over HTTP, answering through the fake Slack."""
    return await web_factory(real_redis)


@dataclass(frozen=True)
class Forged:
    """A request to /slack/events without a valid signature (``now``: a fresh timestamp)."""

    body: bytes
    content_type: str | None
    timestamp: str | None
    signature: str | None

    def headers(self) -> dict[str, str]:
        timestamp = str(int(time.time())) if self.timestamp == "now" else self.timestamp
        headers = {}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if timestamp is not None:
            headers["X-Slack-Request-Timestamp"] = timestamp
        value = _signature(self.signature, self.body, timestamp or "")
        if value is not None:
            headers["X-Slack-Signature"] = value
        return headers


@pytest.mark.cases(EXAMPLES, "401")
@settings(FUZZ, max_examples=EXAMPLES)
@given(forged=st.builds(Forged, BODIES, CONTENT_TYPES, TIMESTAMPS, SIGNATURES))
async def test_forged_or_malformed_requests_get_401_and_change_nothing(
    tally: Tally, web: WebHarness, forged: Forged
) -> None:
    """No valid signature: 401, and no Redis key, stream entry or Slack call appears."""
    before = await _footprint(web)
    response = await web.client.post("/slack/events", data=forged.body, headers=forged.headers())
    tally.add(str(response.status))
    # Slack's unsigned ssl_check probe goes on to Bolt: 200, or 400 if Bolt cannot parse it.
    expected = (200, 400) if is_ssl_check(forged.body) else (401,)
    assert response.status in expected, (response.status, await response.text())
    assert await _footprint(web) == before


WORDS = st.one_of(
    st.sampled_from(["help", "status", "pf_1", "pf_01JWZG3KH9P4N5QXJVNK7M3WTV", "<!channel>"]),
    st.sampled_from(["&amp;", "&lt;pf&gt;", "a" * 65, "pf 1", "\u00e9t\u00e9", "<@U1>", "payload"]),
    st.from_regex(PORTFOLIO_ID_RE, fullmatch=True),
    st.text(max_size=12),
)
PORTFOLIOS = st.from_regex(PORTFOLIO_ID_RE, fullmatch=True)
TEXTS = st.one_of(
    PORTFOLIOS,
    st.tuples(PORTFOLIOS, st.text(max_size=520)).map(" ".join),  # /pause with a reason
    st.lists(WORDS, max_size=4).map(" ".join),
    st.text(max_size=600),
)
USERS = st.one_of(st.sampled_from([*ALLOWED, *ALLOWED, "U3", ""]), PRINTABLE)


@dataclass(frozen=True)
class Command:
    """A slash command as Slack would sign it, with drawn text and fields."""

    command: str
    text: str
    user: str
    user_name: str
    team: str
    channel: str


COMMANDS = st.builds(
    Command,
    st.sampled_from(list(ACTIONS)),
    TEXTS,
    USERS,
    st.text(max_size=30) | st.just("payloadbot"),
    PRINTABLE,
    PRINTABLE,
)


@pytest.mark.cases(EXAMPLES, "queued", "not queued")
@settings(FUZZ, max_examples=EXAMPLES)
@given(drawn=COMMANDS)
async def test_signed_commands_ack_and_queue_only_valid_ones(
    tally: Tally, web: WebHarness, drawn: Command
) -> None:
    """Signed, any text and fields: a 200 ack, and at most one valid command queued."""
    command, text, user = drawn.command, drawn.text, drawn.user
    request = web.sign(
        command,
        text,
        user_id=user,
        user_name=drawn.user_name,
        team_id=drawn.team,
        channel_id=drawn.channel,
    )
    before = await web.redis.xlen(keys.COMMAND_STREAM)
    keys_before = await web.redis.dbsize()
    response = await web.post(request)
    assert response.status == 200, (response.status, await response.text(), drawn)
    entries = await web.redis.xrange(keys.COMMAND_STREAM, count=before + 2) or []
    added = [
        QueuedCommand.model_validate_json(text_map(fields or {})["command"])
        for _, fields in entries[before:]
    ]
    assert len(added) <= 1
    words = text.split()
    if not added:
        tally.add("not queued")
        if not any(PORTFOLIO_ID_RE.fullmatch(w) for w in words):
            assert await web.redis.dbsize() == keys_before
        return
    tally.add("queued")
    [queued] = added
    assert queued.action.value == ACTIONS[command]
    assert PORTFOLIO_ID_RE.fullmatch(queued.portfolio_id)
    assert queued.portfolio_id == words[0]
    assert user in ALLOWED
    assert queued.requested_by.user_id == user


def test_signature_helper_matches_the_fixture() -> None:
    """The forged-signature helper computes Slack's v0 HMAC exactly as the fixture does."""
    body, timestamp = "a=1&b=2", int(time.time())
    expected = slack_signature(body, timestamp)
    assert "v0=" + _hmac(SIGNING_SECRET, str(timestamp), body.encode()) == expected
