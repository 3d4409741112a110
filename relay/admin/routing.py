"""One table per admin module: each row a route, what it takes and what it answers.

``add_routes`` registers the rows with aiohttp and :mod:`relay.admin.openapi`
documents the very same rows, so the served routes and the OpenAPI document
cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """A route of the ``/v1`` admin app, relative to its mount point.

    ``status`` is the success status; ``response`` its JSON body (None: no body).
    ``body`` and ``query`` are the models of the JSON body and the query string.
    ``errors`` are the error statuses the route itself can answer; the bearer
    check's 401 and 503 apply to every route and are not listed here.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    status: int
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()

    @property
    def path_params(self) -> list[str]:
        """Names of the ``{placeholders}`` in ``path``, in order."""
        return _PATH_PARAM.findall(self.path)


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register exactly the given methods (no implicit HEAD), so router and document agree."""
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
