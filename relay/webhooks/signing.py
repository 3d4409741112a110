"""Standard Webhooks signing: pure functions, no I/O.

The signature is ``v1,`` + base64 of HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``
with the secret's raw bytes. During a secret rotation several signatures are
sent, space-separated, so a receiver holding either secret verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    # hmac.digest is the one-shot C path: the same HMAC, without an HMAC object per call.
    digest = hmac.digest(secret, signed, hashlib.sha256)
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per active secret, space-separated."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of a signed delivery (JSON content type included)."""
    return {
        "content-type": "application/json",
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature_header(secrets, msg_id, timestamp, body),
    }
