"""The ``/v1`` admin sub-application: one place that gathers every admin route."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from relay.admin import audit as audit_routes
from relay.admin import catalog as catalog_routes
from relay.admin import dead_letters as dead_letter_routes
from relay.admin import deliveries as delivery_routes
from relay.admin import openapi
from relay.admin import operations as operation_routes
from relay.admin import portal_links as portal_routes
from relay.admin import subscriptions as subscription_routes
from relay.admin.common import admin_middleware
from relay.admin.routing import Route, add_routes
from relay.settings import Settings

REDIS = web.AppKey("redis", aioredis.Redis)
SETTINGS = web.AppKey("settings", Settings)


def routes() -> tuple[Route, ...]:
    """Every admin route: what the app serves and what ``/v1/openapi.json`` documents."""
    return (
        *subscription_routes.ROUTES,
        *portal_routes.ROUTES,
        *catalog_routes.ROUTES,
        *delivery_routes.ROUTES,
        *operation_routes.ROUTES,
        *audit_routes.ROUTES,
        *dead_letter_routes.ROUTES,
        *openapi.ROUTES,
    )


def create_admin_app(redis: aioredis.Redis, settings: Settings) -> web.Application:
    """Build the sub-app the web process mounts at ``/v1``.

    Each admin module declares its routes in one ``ROUTES`` table; handlers read
    the shared Redis client and settings through ``REDIS`` and ``SETTINGS``.
    """
    app = web.Application(middlewares=[admin_middleware(settings.relay_admin_token)])
    app[REDIS] = redis
    app[SETTINGS] = settings
    table = routes()
    app[openapi.ROUTES_KEY] = table
    add_routes(app, table)
    return app
