"""Tracing: one W3C trace per command, from the Slack request to each webhook delivery.

The trace travels as a ``traceparent`` (relay/core/trace.py): on the queued command and
the request record, on each events-stream entry and delivery record, and as a header on
every Glider request and webhook POST (docs/contract.md §11). :func:`span` marks one step; the
span it opens is the current one for the body of its ``with``, so what the step sends
(a Glider request, an event) carries it.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` unset nothing else happens: neither the SDK's tracer
nor the exporter is loaded, and a span is a new id in a context variable. With it set,
:func:`exporting` installs an OpenTelemetry SDK tracer provider that exports every span
over OTLP/HTTP; the SDK reads the standard ``OTEL_*`` variables itself (headers, timeout,
sampler, service name).
The provider is this module's own, not the process-global one, so tests can install
and remove theirs (:func:`install`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import trace as otel
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from relay.core.trace import TraceParent, new_root

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from relay.settings import Settings

__all__ = [
    "SpanKind",
    "annotate",
    "current",
    "current_header",
    "exporting",
    "install",
    "installed",
    "span",
    "uninstall",
]

log = logging.getLogger(__name__)

Attributes = Mapping[str, str | int | float | bool]

_current: ContextVar[TraceParent | None] = ContextVar("relay_trace", default=None)
_tracer: otel.Tracer | None = None
_provider: TracerProvider | None = None


def current() -> TraceParent | None:
    """The span the running step is in, if any."""
    return _current.get()


def current_header() -> str:
    """The current span as a ``traceparent`` header value; ``""`` outside any span."""
    context = _current.get()
    return "" if context is None else context.header()


@contextmanager
def span(
    name: str,
    parent: TraceParent | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes | None = None,
) -> Iterator[TraceParent]:
    """A span named ``name``, current for the body; yields its ``traceparent``.

    Its parent is ``parent``, else the current span; with neither it starts a trace.
    Exported (with ``attributes``, and any exception the body raises) only when a
    provider is installed.
    """
    parent = parent or _current.get()
    if _tracer is None:
        context = parent.child() if parent is not None else new_root()
        token = _current.set(context)
        try:
            yield context
        finally:
            _current.reset(token)
        return
    with _tracer.start_as_current_span(
        name, context=_otel_context(parent), kind=kind, attributes=attributes
    ) as opened:
        own = opened.get_span_context()
        context = TraceParent(f"{own.trace_id:032x}", f"{own.span_id:016x}", int(own.trace_flags))
        token = _current.set(context)
        try:
            yield context
        finally:
            _current.reset(token)


def annotate(attributes: Attributes) -> None:
    """Add ``attributes`` to the current span when spans are recorded (else nothing)."""
    if _tracer is not None:
        otel.get_current_span().set_attributes(attributes)


def _otel_context(parent: TraceParent | None) -> Context:
    """An OpenTelemetry context whose span is ``parent`` (remote); empty for a new trace."""
    if parent is None:
        return Context()
    remote = otel.SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=otel.TraceFlags(parent.flags),
    )
    return otel.set_span_in_context(otel.NonRecordingSpan(remote))


def install(provider: TracerProvider) -> None:
    """Record every span from now on with ``provider`` (an SDK ``TracerProvider``)."""
    global _tracer, _provider  # noqa: PLW0603 - one provider per process, like logging's root
    _provider = provider
    _tracer = provider.get_tracer("glider-relay")


def uninstall() -> None:
    """Back to ids only; the provider is left to its owner to shut down."""
    global _tracer, _provider
    _tracer, _provider = None, None


def installed() -> TracerProvider | None:
    """The provider spans are recorded with, if any."""
    return _provider


def _otlp_provider(process: str) -> TracerProvider:
    # Imported here: without an endpoint the SDK's tracer and the exporter are never loaded.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create({"glider_relay.process": process})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win when they name the service.
        resource = resource.merge(Resource({SERVICE_NAME: f"glider-relay-{process}"}))
    provider = TracerProvider(resource=resource)
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (adding /v1/traces) and its siblings.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


@contextmanager
def exporting(settings: Settings, process: str) -> Iterator[None]:
    """Export spans over OTLP for the body when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set;
    the spans still queued are sent (within the exporter's timeout) on the way out."""
    if settings.otel_exporter_otlp_endpoint is None:
        yield
        return
    provider = _otlp_provider(process)
    install(provider)
    # The endpoint is not logged: a collector's URL may carry a token.
    log.info("exporting traces over OTLP", extra={"process": process})
    try:
        yield
    finally:
        uninstall()
        provider.shutdown()
