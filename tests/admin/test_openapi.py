"""The admin API's OpenAPI 3.1 document: valid, generated from the models, served, complete."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator

from relay.admin.app import routes
from relay.admin.openapi import REF, build_document
from relay.admin.schemas import ErrorBody
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate
from tests.fixtures.web import WebFactory

TOKEN = {"Authorization": "Bearer test-admin-token"}  # web_factory's RELAY_ADMIN_TOKEN
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def _document() -> dict[str, Any]:
    return build_document(routes())


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def _served_v1_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route the web app serves under /v1, read from its router.

    A mounted sub-app's resources carry the mount prefix in ``canonical``.
    """
    found = set()
    for resource in app.router.resources():
        info = resource.get_info()
        if info.get("prefix") != "/v1":
            continue
        for route in info["app"].router.routes():
            assert route.resource is not None
            found.add((route.method, route.resource.canonical))
    return found


def _param(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    params: list[dict[str, Any]] = document["paths"][path]["get"]["parameters"]
    [param] = [p for p in params if p["name"] == name]
    return param


def test_document_is_valid_openapi_3_1() -> None:
    """The generated document passes the OpenAPI 3.1 validator (every $ref resolves)."""
    document = _document()
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


def test_schemas_are_the_pydantic_models_own() -> None:
    """Request bodies are exactly the models' JSON schemas, not hand-written copies."""
    components = _document()["components"]["schemas"]
    generated = SubscriptionCreate.model_json_schema(ref_template=REF, mode="validation")
    assert components["SubscriptionCreate"] == generated
    error = ErrorBody.model_json_schema(ref_template=REF, mode="serialization")
    assert components["ErrorBody"]["properties"] == error["properties"]


def test_error_shape_bearer_auth_and_common_statuses() -> None:
    """Bearer auth everywhere; every operation documents 401 and 503 with the error body."""
    document = _document()
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "details"}
    assert set(detail["required"]) == {"code", "message"}
    for item in document["paths"].values():
        for operation in item.values():
            assert {"401", "503"} <= set(operation["responses"])
            if "requestBody" in operation:
                assert {"400", "422"} <= set(operation["responses"])


def test_lists_are_pages_with_limit_cursor_and_filters() -> None:
    """Lists answer {data, nextCursor}; limit is 1..500; deliveries filter on the status enum."""
    document = _document()
    page = document["components"]["schemas"]["DeliveryPage"]
    assert set(page["required"]) == {"data", "nextCursor"}
    limit = _param(document, "/v1/deliveries", "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["type"]) == (1, 500, "integer")
    assert _param(document, "/v1/subscriptions", "cursor")["schema"] == {"type": "string"}
    status_ref = _param(document, "/v1/deliveries", "status")["schema"]["$ref"]
    status = document["components"]["schemas"][status_ref.rsplit("/", 1)[-1]]
    assert status["enum"] == [s.value for s in DeliveryStatus]
    assert "skipped" in status["enum"]
    recover = document["paths"]["/v1/deliveries/recover"]["post"]["responses"]
    assert "409" in recover  # a disabled subscription's recovery is refused
    for name in ("state", "portfolio"):
        assert not _param(document, "/v1/operations", name)["required"]


async def test_served_routes_and_document_match(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Every /v1 route the web app serves is documented, and every documented one is served."""
    harness = await web_factory(fake_redis)
    served = _served_v1_routes(harness.client.app)
    documented = _operations(_document())
    assert served == documented
    assert len(documented) == 21


async def test_served_document_needs_the_token(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """GET /v1/openapi.json needs the bearer token like every /v1 route (docs/contract.md §6.8)."""
    harness = await web_factory(fake_redis)
    refused = await harness.client.get("/v1/openapi.json")
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "unauthorized"
    response = await harness.client.get("/v1/openapi.json", headers=TOKEN)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == _document()


def test_document_has_what_api_linters_ask_for() -> None:
    """servers, info.license and info.contact, every tag declared, every operation described
    (what `redocly lint` strict and `spectral lint` spectral:oas check; .ci/run runs redocly)."""
    document = _document()
    assert document["servers"]
    assert all(s["url"].startswith("http") for s in document["servers"])
    assert document["info"]["license"]["identifier"] == "MIT"
    assert document["info"]["contact"]["name"]
    declared = {tag["name"] for tag in document["tags"]}
    assert all(tag["description"] for tag in document["tags"])
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["description"].startswith(operation["summary"]), (method, path)
            assert set(operation["tags"]) <= declared, (method, path)
