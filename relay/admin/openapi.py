"""The admin API's OpenAPI 3.1 document, generated from the route tables and their models.

:func:`build_document` is pure: every schema comes from the pydantic models the
routes name (``models_json_schema``, requests in validation mode, answers in
serialization mode), every path and method from the same rows aiohttp serves.
``GET /v1/openapi.json`` serves it behind the bearer token like every ``/v1/``
route (docs/contract.md §6.8).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from relay.admin.routing import Route
from relay.admin.schemas import ErrorBody, OpenApiDocument, ResourceId

REF = "#/components/schemas/{model}"
PREFIX = "/v1"
ALWAYS = (401, 503)  # the bearer check answers these on every route

# Each error status: its name under components.responses, and what it means.
ERRORS = {
    400: ("BadRequest", "The body is not JSON, or a query parameter is out of range"),
    401: ("Unauthorized", "Missing or wrong bearer token"),
    404: ("NotFound", "No such resource"),
    409: ("Conflict", "The resource is not in a state that allows this"),
    413: ("TooLarge", "The body is too large"),
    422: ("Invalid", "The body failed validation; details name each refused field"),
    503: ("Disabled", "The admin API is disabled (RELAY_ADMIN_TOKEN is not set)"),
}
SUCCESS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content"}

# Each operation's tag is its first path segment; these say what each tag is.
TAGS = {
    "subscriptions": "Webhook subscriptions: endpoints, event types, secrets.",
    "deliveries": "Webhook deliveries: attempts, dead letters, replay and recovery.",
    "operations": "Slack commands tracked through Glider, with their timeline.",
    "audit": "The audit log: who did what, read-only.",
    "event-types": "The event catalog: every event type with the JSON Schema of its body.",
    "openapi.json": "This document.",
}
# Where the document is served from: the web process (PORT, default 3000).
SERVERS = [{"url": "http://127.0.0.1:3000", "description": "glider-relay web; use your host"}]

ModelKey = tuple[type[BaseModel], JsonSchemaMode]
# What ``models_json_schema`` answers: each (model, mode) to its ``{"$ref": ...}``.
Refs = Mapping[Any, dict[str, Any]]


def _models(routes: Iterable[Route]) -> list[ModelKey]:
    keys: dict[ModelKey, None] = {(ErrorBody, "serialization"): None}
    for route in routes:
        if route.body is not None:
            keys[(route.body, "validation")] = None
        if route.query is not None:
            keys[(route.query, "validation")] = None
        if route.response is not None:
            keys[(route.response, "serialization")] = None
    return list(keys)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: absent rather than ``null`` (no ``anyOf`` null branch)."""
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    rest = {
        k: v for k, v in schema.items() if k not in ("anyOf", "default", "title", "description")
    }
    if len(branches) == 1:
        rest.update(branches[0])
    if schema.get("default") is not None:
        rest["default"] = schema["default"]
    return rest


def _query_parameters(definition: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(definition.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _without_null(schema),
            **({"description": schema["description"]} if "description" in schema else {}),
        }
        for name, schema in definition["properties"].items()
    ]


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    schema = TypeAdapter(ResourceId).json_schema()
    return [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name in route.path_params
    ]


def _responses(route: Route, refs: Refs) -> dict[str, Any]:
    success: dict[str, Any] = {"description": SUCCESS[route.status]}
    if route.response is not None:
        success["content"] = _json(refs[(route.response, "serialization")])
    errors = {
        str(code): {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
        for code in sorted({*route.errors, *ALWAYS})
    }
    return {str(route.status): success, **errors}


def _error_responses(refs: Refs) -> dict[str, Any]:
    schema = refs[(ErrorBody, "serialization")]
    return {
        name: {"description": description, "content": _json(schema)}
        for name, description in ERRORS.values()
    }


def _operation_id(route: Route) -> str:
    module = route.handler.__module__.rsplit(".", 1)[-1]
    return f"{module}_{route.handler.__name__}"


def _operation(route: Route, refs: Refs, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters = _path_parameters(route)
    if route.query is not None:
        parameters += _query_parameters(schemas[_name(refs[(route.query, "validation")])])
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "description": _description(route),
        "tags": [_tag(route)],
        "parameters": parameters,
        "responses": _responses(route, refs),
    }
    if route.body is not None:
        schema = refs[(route.body, "validation")]
        operation["requestBody"] = {"required": True, "content": _json(schema)}
    return operation


def _tag(route: Route) -> str:
    return route.path.strip("/").split("/")[0]


def _description(route: Route) -> str:
    """The summary, then what every caller needs: the token and each error it may answer."""
    errors = "; ".join(f"{code} {ERRORS[code][1].lower()}" for code in sorted(route.errors))
    refusals = f" Besides 401 and 503 it may answer: {errors}." if errors else ""
    return (
        f"{route.summary}. Needs the bearer token (RELAY_ADMIN_TOKEN); "
        f"answers {route.status} {SUCCESS[route.status]} on success.{refusals}"
    )


def _tags(routes: Iterable[Route]) -> list[dict[str, str]]:
    names = dict.fromkeys(_tag(route) for route in routes)
    return [{"name": n, "description": TAGS.get(n, f"The /v1/{n} routes.")} for n in names]


def _name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def build_document(routes: Iterable[Route], *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` as mounted at ``/v1``."""
    routes = list(routes)
    refs, top = models_json_schema(_models(routes), ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, refs, schemas)
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    for route in routes:  # query models live on as parameters, not as components
        if route.query is not None:
            schemas.pop(_name(refs[(route.query, "validation")]), None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "glider-relay admin API",
            "version": version,
            "description": "Webhook subscriptions, deliveries, tracked operations, audit log.",
            "license": {"name": "MIT", "identifier": "MIT"},
            "contact": {"name": "The operators of this glider-relay deployment"},
        },
        "servers": SERVERS,
        "tags": _tags(routes),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": _error_responses(refs),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


@functools.cache
def document_bytes(routes: tuple[Route, ...]) -> bytes:
    """The document as served; built once per route table."""
    return json.dumps(build_document(routes), separators=(",", ":")).encode()


# The full route table of the admin app this handler is served by.
ROUTES_KEY: web.AppKey[tuple[Route, ...]] = web.AppKey("admin_routes")


async def serve(request: web.Request) -> web.Response:
    body = document_bytes(request.app[ROUTES_KEY])
    return web.Response(body=body, content_type="application/json")


ROUTES = (
    Route(
        "GET",
        "/openapi.json",
        serve,
        "This document (OpenAPI 3.1)",
        200,
        response=OpenApiDocument,
    ),
)
