"""W3C Trace Context's ``traceparent``, parsed and formatted (https://www.w3.org/TR/trace-context/).

Pure and cheap: this is all the relay does for tracing when no exporter is configured
(relay/tracing.py), so an id costs one ``getrandbits`` and a format. A header that is
not a valid ``traceparent`` is ignored (None), never an error: it comes from outside.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

HEADER = "traceparent"
# A version-00 header is 55 characters; later versions may append fields. Anything much
# longer is not a traceparent worth reading.
MAX_HEADER_CHARS = 512
_VERSION_00_CHARS = 55
TRACEPARENT_CHARS = _VERSION_00_CHARS  # what header() writes
_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = 0x01


class TraceParent(NamedTuple):
    """One span's place in a trace: the trace id, the span's id and the trace flags.

    A named tuple, not a dataclass: one is made per span, and a frozen dataclass costs
    several times as much to build.
    """

    trace_id: str  # 32 lower-case hex digits, not all zero
    span_id: str  # 16 lower-case hex digits, not all zero
    flags: int = SAMPLED

    def header(self) -> str:
        """The ``traceparent`` header naming this span as the parent (always version 00)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self) -> TraceParent:
        """A new span of the same trace, with the same flags."""
        return TraceParent(self.trace_id, new_span_id(), self.flags)

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def new_trace_id() -> str:
    # The random module, not secrets: trace ids must be unique, not unguessable, and a
    # command's trace id is no credential.
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def new_root() -> TraceParent:
    """The first span of a new, sampled trace."""
    return TraceParent(new_trace_id(), new_span_id(), SAMPLED)


def parse(header: str | None) -> TraceParent | None:
    """The parent a ``traceparent`` header names, or None when it is absent or invalid.

    Follows the specification's rules: version ``ff`` is invalid; version ``00`` is exactly
    55 characters; a later version may carry more after a ``-``, which is dropped (its
    first four fields are read as version 00's). All-zero ids are invalid.
    """
    if not header or len(header) > MAX_HEADER_CHARS:
        return None
    value = header.strip(" \t")
    match = _FIELDS.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    rest = value[_VERSION_00_CHARS:]
    if version == "00" and rest:
        return None
    if rest and not rest.startswith("-"):
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def first_header(values: object) -> str | None:
    """The one ``traceparent`` of a header mapping's values (a str, or a sequence of them).

    Several values make the header invalid (the specification allows one), so none is taken.
    """
    if isinstance(values, str):
        return values
    if isinstance(values, list | tuple) and len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return None
