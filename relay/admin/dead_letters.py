"""Admin routes for dead letters (docs/contract.md §6): what the workers gave up on, and replay.

``GET /v1/dead-letters?stream=commands|replies&limit=&cursor=`` lists them newest
first (both streams when ``stream`` is absent), each with its reason;
``POST /v1/dead-letters/{id}/replay`` puts one back on its stream.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from relay.admin import app as admin
from relay.admin.common import ApiError, actor_of, list_response, parse_limit, query_enum
from relay.admin.routing import Route
from relay.admin.schemas import ListQuery, Page
from relay.store import dead_letters
from relay.store.dead_letters import DeadLetter, DeadStream


class DeadLetterQuery(ListQuery):
    """Query string of ``GET /v1/dead-letters``."""

    stream: DeadStream | None = Field(default=None, description="only this stream's; default both")


class DeadLetterPage(Page[DeadLetter]):
    pass


class Replayed(BaseModel):
    """Answer of a replay: the dead letter's id and the entry it became on its stream."""

    id: str
    stream: DeadStream
    entryId: str


def missing(dead_letter_id: str) -> str:
    """The refusal for an id that names no dead letter (the CLI says the same)."""
    return f"no dead letter {dead_letter_id} (already replayed, or never there)"


async def list_dead_letters(request: web.Request) -> web.Response:
    cursor = request.query.get("cursor") or None
    if cursor is not None and dead_letters.parse_id(cursor) is None:
        raise ApiError(400, "bad_cursor", "cursor must be a dead letter id (nextCursor)")
    letters, cursor = await dead_letters.page(
        request.app[admin.REDIS],
        stream=query_enum(request, "stream", DeadStream),
        cursor=cursor,
        limit=parse_limit(request),
    )
    return list_response(letters, cursor)


async def replay_dead_letter(request: web.Request, dead_letter_id: str) -> Replayed:
    """Queue a dead letter again (the admin API's and the console's one path); 404 if gone,
    409 for a command whose request has ended (it would do nothing)."""
    try:
        entry_id = await dead_letters.replay(
            request.app[admin.REDIS], dead_letter_id, actor=actor_of(request)
        )
    except dead_letters.RequestFinal as exc:
        raise ApiError(409, "request_final", str(exc)) from None
    if entry_id is None:
        raise ApiError(404, "not_found", missing(dead_letter_id))
    stream = DeadStream(dead_letter_id.split("-", 1)[0])
    return Replayed(id=dead_letter_id, stream=stream, entryId=entry_id)


async def replay(request: web.Request) -> web.Response:
    body = await replay_dead_letter(request, request.match_info["id"])
    return web.json_response(body.model_dump(mode="json"), status=202)


ROUTES = (
    Route(
        "GET",
        "/dead-letters",
        list_dead_letters,
        "List what the workers gave up on, with the reason, newest first",
        200,
        response=DeadLetterPage,
        query=DeadLetterQuery,
        errors=(400,),
    ),
    Route(
        "POST",
        "/dead-letters/{id}/replay",
        replay,
        "Put a dead letter back on its stream for the workers",
        202,
        response=Replayed,
        errors=(404, 409),
    ),
)
