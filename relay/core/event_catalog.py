"""The event catalog (docs/contract.md §10): every event type with a JSON Schema of its body.

Each schema is generated from the pydantic model that builds that event's body
(:class:`relay.core.events.Event`, :class:`relay.core.events.RelayTestEvent`), in
serialization mode, with ``type`` pinned to the one value; so the catalog cannot
drift from what is sent. Pure: no I/O.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel

from relay.core.events import TEST_EVENT_TYPE, Event, EventType, RelayTestEvent

BODY_FIELDS = ("type", "timestamp", "data")

DESCRIPTIONS: dict[str, str] = {
    EventType.REQUESTED.value: "A rebalance was queued from Slack.",
    EventType.SUBMITTED.value: "Glider accepted the rebalance; data.operationId is its operation.",
    EventType.AWAITING_USER.value: "Glider needs an action from the portfolio's end user.",
    EventType.COMPLETED.value: "The rebalance finished.",
    EventType.FAILED.value: "The rebalance failed; data.error carries Glider's reason.",
    EventType.CANCELLED.value: "The rebalance was cancelled.",
    EventType.REJECTED.value: "Glider refused the command (unknown portfolio, scope, cooldown).",
    EventType.PAUSED.value: "The portfolio's automation was paused.",
    EventType.RESUMED.value: "The portfolio's automation was resumed.",
    TEST_EVENT_TYPE: "A test event, sent on request to one subscription.",
}


class EventTypeInfo(BaseModel):
    """One entry of ``GET /v1/event-types``."""

    type: str
    description: str
    schema_: dict[str, Any]

    model_config = {"populate_by_name": True}

    def wire(self) -> dict[str, Any]:
        return {"type": self.type, "description": self.description, "schema": self.schema_}


def body_schema(model: type[BaseModel], event_type: str) -> dict[str, Any]:
    """The JSON Schema of ``model``'s webhook body, with ``type`` fixed to ``event_type``."""
    schema = copy.deepcopy(model.model_json_schema(mode="serialization"))
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k in BODY_FIELDS}
    schema["properties"]["type"] = {"const": event_type, "type": "string", "title": "Type"}
    schema["required"] = list(BODY_FIELDS)
    schema["additionalProperties"] = False
    schema["title"] = event_type
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


@functools.cache
def catalog() -> tuple[EventTypeInfo, ...]:
    """Every event type a subscriber can receive, the outcome events first."""
    infos = [
        EventTypeInfo(
            type=t.value,
            description=DESCRIPTIONS.get(t.value, t.value),
            schema_=body_schema(Event, t.value),
        )
        for t in EventType
    ]
    infos.append(
        EventTypeInfo(
            type=TEST_EVENT_TYPE,
            description=DESCRIPTIONS[TEST_EVENT_TYPE],
            schema_=body_schema(RelayTestEvent, TEST_EVENT_TYPE),
        )
    )
    return tuple(infos)
