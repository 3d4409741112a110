"""The ``/v1`` admin sub-application: one place that gathers every admin route."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from relay.admin import deliveries as delivery_routes
from relay.admin import operations as operation_routes
from relay.admin import subscriptions as subscription_routes
from relay.admin.common import admin_middleware
from relay.settings import Settings

REDIS = web.AppKey("redis", aioredis.Redis)
SETTINGS = web.AppKey("settings", Settings)


def create_admin_app(redis: aioredis.Redis, settings: Settings) -> web.Application:
    """Build the sub-app the web process mounts at ``/v1``.

    Each admin module contributes its routes with ``add_routes(app)``; handlers
    read the shared Redis client and settings through ``REDIS`` and ``SETTINGS``.
    """
    app = web.Application(middlewares=[admin_middleware(settings.relay_admin_token)])
    app[REDIS] = redis
    app[SETTINGS] = settings
    subscription_routes.add_routes(app)
    delivery_routes.add_routes(app)
    operation_routes.add_routes(app)
    return app
