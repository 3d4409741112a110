"""One JSON object per line on stderr, with secrets scrubbed.

Context (request id, portfolio, operation id) rides along through ``extra=``.
Secret values are registered at start-up (:mod:`relay.core.redact`) and replaced
wherever they appear in a formatted line, in their raw and their JSON-escaped
form (the line is JSON, so a secret holding ``"`` or ``\\`` is escaped in it),
so even an exception message that quotes a header cannot leak one.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from relay.core.redact import redact, register_secrets

__all__ = ["JsonFormatter", "configure_logging", "redact", "register_secrets"]

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(_ENCODER.encode(payload))


def configure_logging(level: str = "INFO", *, secrets: Iterable[str | None] = ()) -> None:
    """Route every logger to one JSON stderr handler at ``level``."""
    register_secrets(secrets)
    # A line never shows the caller, thread or process, so records need not look
    # them up (the logging HOWTO's "Optimization"; a few us on every line).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what our own request logging says.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
