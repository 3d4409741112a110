"""Fuzzing Standard Webhooks signing against the reference ``standardwebhooks`` library."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.webhooks.secrets import PREFIX, secret_bytes
from relay.webhooks.signing import HEADER_SIGNATURE, sign, webhook_headers
from tests.fuzz.support import FUZZ, Tally

EXAMPLES = 400

SECRETS = st.binary(min_size=24, max_size=64).map(
    lambda raw: PREFIX + base64.b64encode(raw).decode()
)
IDS = st.one_of(
    st.from_regex(r"msg_[0-9A-HJKMNP-TV-Z]{26}", fullmatch=True),
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=80),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
BODIES = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"])).map(str.encode),
    JSON.map(lambda value: json.dumps(value).encode()),
)
# Within the library's five-minute tolerance of now.
SKEWS = st.integers(-240, 240)


@pytest.mark.cases(EXAMPLES, "verified")
@settings(FUZZ, max_examples=EXAMPLES)
@given(
    secrets=st.lists(SECRETS, min_size=1, max_size=3, unique=True),
    msg_id=IDS,
    body=BODIES,
    skew=SKEWS,
)
def test_every_active_secret_verifies_with_the_library(
    tally: Tally, secrets: list[str], msg_id: str, body: bytes, skew: int
) -> None:
    """Signed with 1-3 secrets (a rotation): the library verifies with each one of them."""
    timestamp = int(time.time()) + skew
    headers = webhook_headers([secret_bytes(s) for s in secrets], msg_id, timestamp, body)
    assert len(headers[HEADER_SIGNATURE].split(" ")) == len(secrets)
    for secret in secrets:
        Webhook(secret).verify(body, headers, json_parse=False)
    tally.add("verified")


@pytest.mark.cases(EXAMPLES, "same, forgeries refused")
@settings(FUZZ, max_examples=EXAMPLES)
@given(
    pair=st.lists(SECRETS, min_size=2, max_size=2, unique=True),
    msg_id=IDS,
    body=BODIES,
    skew=SKEWS,
)
def test_signature_is_the_librarys_and_binds_every_part(
    tally: Tally, pair: list[str], msg_id: str, body: bytes, skew: int
) -> None:
    """Our v1 signature equals the library's; another secret, id or body does not verify."""
    secret, other = pair
    timestamp = int(time.time()) + skew
    ours = sign(secret_bytes(secret), msg_id, timestamp, body)
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    assert ours == theirs
    headers = webhook_headers([secret_bytes(secret)], msg_id, timestamp, body)
    forged = [
        (Webhook(other), body, headers),
        (Webhook(secret), body + b" ", headers),
        (Webhook(secret), body, {**headers, "webhook-id": msg_id + "x"}),
    ]
    for verifier, data, sent in forged:
        with pytest.raises(WebhookVerificationError):
            verifier.verify(data, sent, json_parse=False)
    tally.add("same, forgeries refused")
