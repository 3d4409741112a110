"""Wire models every admin route shares: the error body, list pages, list queries.

They describe what :mod:`relay.admin.common` writes and reads, so the OpenAPI
document is generated from them rather than written by hand.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from relay.admin.common import DEFAULT_LIMIT, MAX_LIMIT

T = TypeVar("T")

# What a path id looks like (``sub_<ULID>``, ``dlv_<ULID>``, ``req_<ULID>``); others are 404.
ResourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class FieldError(BaseModel):
    """One refused field: its dotted path in the body and why."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found", "invalid", "unauthorized"])
    message: str
    details: list[FieldError] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"?}}``."""

    error: ErrorDetail


class Page(BaseModel, Generic[T]):
    """A list answer: newest first; pass ``nextCursor`` as ``cursor`` for the next page."""

    data: list[T]
    nextCursor: str | None


class ListQuery(BaseModel):
    """Query string of every list route."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, description="nextCursor of the previous page")


class OpenApiDocument(BaseModel):
    """The top level of the document ``GET /v1/openapi.json`` serves."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
