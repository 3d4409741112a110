"""The console (``/console``) and portal (``/portal``) sub-apps the web process mounts.

Both render Jinja2 templates from ``relay/console/templates`` with autoescape on
(everything from outside is escaped) and read the admin API's ``REDIS`` and
``SETTINGS`` keys, so their actions run the admin API's own functions.
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Middleware

from relay.admin import app as admin
from relay.admin.common import AUDIT_ACTOR
from relay.console import actions, pages, portal, signin
from relay.console.web import guard, see_other
from relay.core.audit import CONSOLE, PORTAL
from relay.settings import Settings

PUBLIC_CONSOLE = {"console_sign_in", "console_sign_in_post"}
PUBLIC_PORTAL = {"portal_open"}


def _templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("relay.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )


def _route_name(request: web.Request) -> str:
    return request.match_info.route.name or ""


def _to_sign_in(request: web.Request) -> web.StreamResponse:
    return see_other("/console/sign-in")


def _base(redis: aioredis.Redis, settings: Settings, middleware: Middleware) -> web.Application:
    app = web.Application(middlewares=[middleware])
    app[admin.REDIS] = redis
    app[admin.SETTINGS] = settings
    _templates(app)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    return await pages.overview_page(request)


def create_console_app(redis: aioredis.Redis, settings: Settings) -> web.Application:
    """The operator console; mount at ``/console``."""
    middleware = guard(
        kind="operator",
        cookie=signin.COOKIE,
        public=lambda r: _route_name(r) in PUBLIC_CONSOLE,
        refused=_to_sign_in,
        valid=_always,
    )
    app = _base(redis, settings, middleware)
    app[AUDIT_ACTOR] = CONSOLE  # its actions run the admin API's functions, audited as console
    r = app.router
    r.add_get("/sign-in", signin.sign_in_form, name="console_sign_in")
    r.add_post("/sign-in", signin.sign_in, name="console_sign_in_post")
    r.add_post("/sign-out", signin.sign_out)
    r.add_get("", _index)  # /console itself
    r.add_get("/", _index)
    r.add_get("/overview", pages.overview_page)
    r.add_get("/subscriptions", pages.subscriptions_page)
    r.add_post("/subscriptions", actions.create)
    r.add_get("/subscriptions/{id}", pages.subscription_page)
    for verb, handler in (
        ("edit", actions.edit),
        ("enable", actions.enable),
        ("disable", actions.disable),
        ("rotate-secret", actions.rotate_secret),
        ("delete", actions.delete),
        ("test", actions.send_test),
        ("portal-link", actions.portal_link),
    ):
        r.add_post(f"/subscriptions/{{id}}/{verb}", handler)
    r.add_get("/deliveries", pages.deliveries_page)
    r.add_post("/deliveries/recover", actions.recover)
    r.add_get("/deliveries/{id}", pages.delivery_page)
    r.add_post("/deliveries/{id}/replay", actions.replay)
    r.add_get("/operations", pages.operations_page)
    r.add_get("/operations/{request_id}", pages.operation_page)
    r.add_get("/dead-letters", pages.dead_letters_page)
    r.add_post("/dead-letters/{id}/replay", actions.replay_dead_letter)
    r.add_get("/audit", pages.audit_log_page)
    r.add_get("/event-types", pages.event_types_page)
    return app


def create_portal_app(redis: aioredis.Redis, settings: Settings) -> web.Application:
    """The partner portal; mount at ``/portal``."""
    middleware = guard(
        kind="portal",
        cookie=portal.COOKIE,
        public=lambda r: _route_name(r) in PUBLIC_PORTAL,
        refused=portal.refused,
        valid=portal.still_valid,
    )
    app = _base(redis, settings, middleware)
    app[AUDIT_ACTOR] = PORTAL  # a partner's replay, rotation or test, through the same code
    r = app.router
    r.add_get("", portal.home)  # /portal itself
    r.add_get("/", portal.home)
    r.add_get("/event-types", portal.event_types)
    r.add_get("/deliveries/{id}", portal.delivery_page)
    r.add_post("/deliveries/{id}/replay", portal.replay)
    r.add_post("/rotate-secret", portal.rotate_secret)
    r.add_post("/test", portal.send_test)
    r.add_get("/{token}", portal.open_link, name="portal_open")
    return app


async def _always(request: web.Request, session: object) -> bool:
    return True
