"""Tracing (docs/contract.md §11): one command is one trace, from Slack to each webhook delivery.

The end-to-end test runs the web app, the worker's executor, poller and dispatcher,
the Glider simulator and a webhook receiver in this process, with an SDK tracer
provider whose in-memory exporter collects every span.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace as otel
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relay import tracing
from relay.core.poll_policy import PollPolicy
from relay.core.trace import TraceParent, parse
from relay.settings import load_settings
from relay.sim.config import ADMIN_KEY, PF_MAIN
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from relay.worker.process import serve
from relay.worker.registry import Tuning
from tests import ROOT
from tests.fixtures.glider import SimFactory, free_port
from tests.fixtures.web import WebFactory
from tests.fixtures.webhooks import Receiver
from tests.fixtures.worker import eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SLACK_SPAN = "00f067aa0ba902b7"
EVENTS = {"rebalance.requested", "rebalance.submitted", "rebalance.completed"}


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Spans are recorded by an SDK provider for the test, and collected in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


def _hex(value: int, width: int) -> str:
    return f"{value:0{width}x}"


def _span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return _hex(span.context.span_id, 16)


def _parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else _hex(span.parent.span_id, 16)


def _named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_one_command_is_one_trace_from_slack_to_every_webhook(  # noqa: PLR0917
    web_factory: WebFactory,
    real_redis: aioredis.Redis,
    redis_url: str,
    sim_factory: SimFactory,
    receiver: Receiver,
    exported: InMemorySpanExporter,
) -> None:
    """Slack's traceparent reaches the enqueue, the Glider POST and GETs, and each delivery."""
    sim = await sim_factory(op_duration_s=0)
    await SubscriptionStore(real_redis).create(
        SubscriptionCreate(url=receiver.url("hook"), events=["*"])
    )
    web = await web_factory(real_redis)
    settings = load_settings(
        redis_url=redis_url,
        glider_api_url=sim.url,
        glider_api_key=ADMIN_KEY,
        relay_allow_private_urls=True,
    )
    stop = asyncio.Event()
    tuning = Tuning(claim_idle_ms=2000, lease_ms=2000, poll=PollPolicy(first_s=0.05))
    only = ("executor", "poller", "dispatcher")
    worker = asyncio.create_task(serve(settings, stop, only=only, tuning=tuning, redis=real_redis))
    try:
        request = web.sign("/rebalance", PF_MAIN)
        request.headers["traceparent"] = f"00-{TRACE}-{SLACK_SPAN}-01"
        assert (await web.post(request)).status == 200
        hooks = await receiver.wait_for("hook", len(EVENTS), within=20)
        await eventually(lambda: len(_named(exported.get_finished_spans(), "webhook")) >= 3)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=15)

    # The worker's start-up key check (GET /v2/whoami) is a trace of its own, not the command's.
    spans = tuple(s for s in exported.get_finished_spans() if "whoami" not in s.name)
    assert {_hex(s.context.trace_id, 32) for s in spans if s.context} == {TRACE}
    ids = {_span_id(s): s for s in spans}
    [slack] = _named(spans, "slack /rebalance")
    assert slack.kind is otel.SpanKind.SERVER
    assert _parent_id(slack) == SLACK_SPAN  # Slack's own span, remote
    [enqueue] = _named(spans, "enqueue")
    [execute] = _named(spans, "execute rebalance")
    assert _parent_id(enqueue) == _parent_id(execute) == _span_id(slack)
    [post] = _named(spans, "POST /v2/portfolios/{portfolioId}/rebalance")
    assert _parent_id(post) == _span_id(execute)
    polls = _named(spans, "poll operation")
    gets = _named(spans, "GET /v2/portfolios/{portfolioId}/operations/{operationId}")
    assert polls
    assert {_parent_id(g) for g in gets} == {_span_id(p) for p in polls}
    assert {_parent_id(p) for p in polls} == {_span_id(slack)}

    assert {json.loads(h.body)["type"] for h in hooks} == EVENTS
    for hook in hooks:
        received = parse(hook.headers.get("traceparent"))
        assert received is not None
        assert received.trace_id == TRACE
        delivery = ids[received.span_id]  # the header names the attempt's own span
        assert delivery.name == f"webhook {json.loads(hook.body)['type']}"
        assert delivery.kind is otel.SpanKind.CLIENT
        # ...whose parent is the step that recorded the event: web, executor or poller.
        assert _parent_id(delivery) in {_span_id(slack), _span_id(execute)} | {
            _span_id(p) for p in polls
        }


async def test_a_slack_request_without_a_valid_traceparent_starts_a_trace(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """No header, or a malformed one, and the queued command starts a trace of its own."""
    web = await web_factory(any_redis)
    plain = web.sign("/rebalance", "pf_a")
    garbled = web.sign("/rebalance", "pf_b")
    garbled.headers["traceparent"] = f"00-{TRACE.upper()}-{SLACK_SPAN}-01"
    for request in (plain, garbled):
        assert (await web.post(request)).status == 200
    queued = await web.queued()
    traces = [parse(command.traceparent) for command in queued]
    assert all(isinstance(t, TraceParent) for t in traces)
    assert len({t.trace_id for t in traces if t}) == 2
    assert TRACE not in {t.trace_id for t in traces if t}


def test_without_a_provider_spans_still_propagate_ids() -> None:
    """Unset, no SDK provider is installed; a span is a new id in the parent's trace."""
    assert tracing.installed() is None
    assert not isinstance(otel.get_tracer_provider(), TracerProvider)
    assert tracing.current_header() == ""
    parent = TraceParent(TRACE, SLACK_SPAN)
    with tracing.span("outer", parent) as outer:
        assert (outer.trace_id, outer.flags) == (TRACE, parent.flags)
        assert outer.span_id != SLACK_SPAN
        with tracing.span("inner") as inner:
            assert inner.trace_id == TRACE
            assert tracing.current_header() == inner.header()
        assert tracing.current() == outer
    assert tracing.current() is None


def test_exporting_installs_nothing_without_an_endpoint() -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT unset (or blank) no tracer provider is installed."""
    for settings in (load_settings(), load_settings(otel_exporter_otlp_endpoint=" ")):
        assert settings.otel_exporter_otlp_endpoint is None
        with tracing.exporting(settings, "web"):
            assert tracing.installed() is None
            assert not isinstance(otel.get_tracer_provider(), TracerProvider)


def test_exporting_installs_an_otlp_provider_with_an_endpoint() -> None:
    """With the endpoint set, an SDK provider records spans for the block, then is gone."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    with tracing.exporting(load_settings(otel_exporter_otlp_endpoint=endpoint), "worker"):
        provider = tracing.installed()
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "glider-relay-worker"
    assert tracing.installed() is None


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector stand-in: keeps each request's path and decoded spans."""

    received: ClassVar[list[tuple[str, ExportTraceServiceRequest]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, ExportTraceServiceRequest.FromString(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what arrived, not the access log."""


@pytest.fixture
def collector() -> Iterator[str]:
    """A collector on a loopback port, in a thread (the SDK exports from its own threads)."""
    _Collector.received.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_spans_reach_the_otlp_endpoint(collector: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, spans are POSTed to its /v1/traces (OTLP/HTTP)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
    with tracing.exporting(load_settings(), "web"), tracing.span("slack /rebalance") as span:
        pass
    [(path, request)] = _Collector.received  # sent on the way out, not lost
    assert path == "/v1/traces"
    [resource] = request.resource_spans
    names = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert names["service.name"] == "glider-relay-web"
    [exported] = [s for scope in resource.scope_spans for s in scope.spans]
    assert exported.name == "slack /rebalance"
    assert (exported.trace_id.hex(), exported.span_id.hex()) == (span.trace_id, span.span_id)


def test_without_an_endpoint_the_sdk_tracer_is_never_loaded() -> None:
    """web and worker, with the variable unset, run spans without the SDK's tracer or the
    exporter ever imported (redis-py imports SDK metrics modules of its own: not ours)."""
    script = (
        "import sys, bot.web, relay.worker.process\n"
        "from relay import tracing\n"
        "from relay.settings import load_settings\n"
        "with tracing.exporting(load_settings(), 'web'), tracing.span('x') as s:\n"
        "    assert tracing.current_header() == s.header()\n"
        "ours = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m.startswith(ours)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
