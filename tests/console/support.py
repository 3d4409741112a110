"""Helpers of the console tests: sign in over HTTP, read a form's CSRF token."""

from __future__ import annotations

import re

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

TOKEN = "console-admin-token-for-tests"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
Client = TestClient[web.Request, web.Application]


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: Client, token: str = TOKEN) -> ClientResponse:
    """Sign in through the form, as a browser would; the answer after redirects."""
    form = await (await client.get("/console/sign-in")).text()
    return await client.post("/console/sign-in", data={"csrf": csrf_of(form), "token": token})


async def post_form(client: Client, page: str, action: str, **fields: str) -> ClientResponse:
    """Submit a form of ``page`` to ``action`` with the page's CSRF token."""
    html = await (await client.get(page)).text()
    return await client.post(action, data={"csrf": csrf_of(html), **fields})
