"""Every message the bot sends is valid Block Kit within Slack's limits, for any outside text.

Property tests: each message kind (acks, help, refusals, status, every outcome
reply, on-call alerts) is built from arbitrary, hostile and huge text and held to
Slack's rules (:mod:`tests.fixtures.blockkit`: ``Block.parse`` + ``validate_json``
and the limits), with every cut outside an escape and no injected token.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot import confirm_messages, messages
from bot.store_refusals import WriteRefused
from relay.core.bounds import PORTFOLIO_ID_CHARS
from relay.core.commands import Action, Requester
from relay.core.events import Event, EventData, EventError, EventRequester, EventType
from relay.core.plans import ReplyKind
from relay.core.records import RequestRecord, RequestState
from relay.glider.models import PortfolioDetail
from relay.slack import approvals, cards
from relay.slack.blocks import context, escape, header, message, section
from relay.slack.replies import render
from relay.webhooks import alert_view
from relay.webhooks.alert_card import StoredAlert
from relay.webhooks.oncall import SLACK_TARGET, Alert, OnCallRules, disabled_alerts, event_alerts
from relay.webhooks.policy import GONE
from tests.fixtures.blockkit import message_errors

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# Pieces that stress escaping and cutting: entities to be, tokens to inject,
# astral and combining characters, ZWJ emoji, backticks, whitespace.
NASTY = [
    "&",
    "<",
    ">",
    "<!channel>",
    "<@U1>",
    "`",
    "é",
    "e\u0301",
    "👩‍👩‍👧",
    "👍🏽",
    "\n",
    " ",
    "*_~",
]


@st.composite
def outside_text(draw: st.DrawFn) -> str:
    """Text from outside: short or many KB, made of arbitrary and nasty pieces."""
    piece = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=12)))
    tail = draw(st.text(max_size=40))
    repeat = draw(st.sampled_from([0, 1, 3, 700, 4000]))
    return piece * repeat + tail


TEXT = outside_text()
MAYBE = st.one_of(st.none(), TEXT)
STATES = st.sampled_from(list(RequestState))
ACTIONS = st.sampled_from(list(Action))
ERROR_CODES = st.one_of(
    st.sampled_from(["cooldown", "not_found", "forbidden", "unauthorized"]), TEXT
)
CHECKS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[Any]], Any]
_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def mrkdwn_objects(node: object) -> list[dict[str, Any]]:
    """Every mrkdwn text object anywhere in ``node`` (sections, contexts, fields, dialogs)."""
    if isinstance(node, list):
        return [found for item in node for found in mrkdwn_objects(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if node.get("type") == "mrkdwn" else []
    return own + [found for value in node.values() for found in mrkdwn_objects(value)]


def assert_verbatim(blocks: list[dict[str, Any]]) -> None:
    """Every mrkdwn text object is verbatim, as slack_sdk's Block Kit model reads it too:
    Slack links no bare URL, #channel or @here of outside text (docs/contract.md §4.7)."""
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        for read in (block, parsed.to_dict()):
            for obj in mrkdwn_objects(read):
                assert obj.get("verbatim") is True, obj["text"][:80]


def assert_valid(payload: dict[str, Any]) -> None:
    """Slack takes it, no cut left a broken entity or an injected token, and every mrkdwn
    text object is verbatim."""
    assert message_errors(payload) == []
    blocks = payload.get("blocks") or []
    assert_verbatim(json.loads(blocks) if isinstance(blocks, str) else blocks)
    texts = [payload["text"]] + [
        obj["text"]["text"] if isinstance(obj["text"], dict) else obj["text"]  # a button's label
        for block in payload.get("blocks") or []
        for obj in [block.get("text"), *(block.get("elements") or [])]
        if isinstance(obj, dict)
    ]
    for text in texts:
        assert not _ENTITY.search(text), text[-40:]
        assert "<!channel>" not in text
        assert "<@U1>" not in text


def record(draw: Draw, state: RequestState | None = None) -> RequestRecord:
    return RequestRecord(
        request_id=draw(TEXT),
        action=draw(ACTIONS),
        portfolio_id=draw(TEXT),
        state=state or draw(STATES),
        requested_by=Requester(user_id=draw(TEXT), user_name=draw(MAYBE)),
        accepted_at=NOW,
        updated_at=NOW,
        reason=draw(MAYBE),
        operation_id=draw(MAYBE),
        operation_state=draw(MAYBE),
        error_code=draw(st.one_of(st.none(), ERROR_CODES)),
        error_message=draw(MAYBE),
        retry_at=draw(st.sampled_from([None, NOW + timedelta(seconds=119)])),
    )


def portfolio(draw: Draw) -> PortfolioDetail:
    """A portfolio as Glider's JSON says it (through the model that bounds it on the way in)."""
    schedule = {"status": draw(TEXT), "frequency": draw(MAYBE), "nextDueAt": NOW.isoformat()}
    # Any id Glider may send: 1 to PORTFOLIO_ID_CHARS characters (past that it is refused).
    pid = draw(st.text(min_size=1, max_size=PORTFOLIO_ID_CHARS))
    wire = {"portfolioId": pid, "portfolioName": draw(MAYBE), "schedule": schedule}
    return PortfolioDetail.model_validate(wire)


def _maybe(draw: Draw, build: Callable[[Draw], T]) -> T | None:
    return build(draw) if draw(st.booleans()) else None


# Each public builder of bot/messages.py, with how to call it from drawn text.
ACKS: dict[str, Callable[[Draw], messages.Reply]] = {
    "queued": lambda d: messages.queued(d(ACTIONS), d(TEXT), d(TEXT), d(MAYBE)),
    "already_queued": lambda d: messages.already_queued(d(TEXT), d(TEXT)),
    "in_flight": lambda d: messages.in_flight(d(TEXT), d(TEXT), _maybe(d, record)),
    "usage": lambda d: messages.usage(d(st.lists(TEXT, max_size=60)), d(MAYBE)),
    "refused": lambda d: messages.refused(d(TEXT), frozenset(d(st.lists(TEXT, max_size=12)))),
    "not_queued": lambda d: messages.not_queued(),
    "store_full": lambda d: messages.store_full(),
    "store_read_only": lambda d: messages.store_read_only(d(ACTIONS), d(TEXT)),
    "click_not_handled": lambda d: messages.click_not_handled(
        d(st.sampled_from([None, *WriteRefused]))
    ),
    "outcome_unknown": lambda d: messages.outcome_unknown(d(ACTIONS), d(TEXT), d(TEXT)),
    "queued_after_all": lambda d: messages.queued_after_all(d(ACTIONS), d(TEXT), d(TEXT)),
    "settled_not_queued": lambda d: messages.settled_not_queued(d(ACTIONS), d(TEXT)),
    "still_unknown": lambda d: messages.still_unknown(d(ACTIONS), d(TEXT)),
    "looking_up": lambda d: messages.looking_up(d(TEXT)),
    "status": lambda d: messages.status(
        messages.StatusView(
            portfolio_id=d(TEXT),
            portfolio=_maybe(d, portfolio),
            glider_note=d(MAYBE),
            record=_maybe(d, record),
            record_note=d(MAYBE),
            now=NOW,
        )
    ),
}


def facts(draw: Draw) -> confirm_messages.PreviewFacts:
    return confirm_messages.PreviewFacts(
        portfolio_id=draw(TEXT),
        now=NOW,
        portfolio=_maybe(draw, portfolio),
        notes=tuple(draw(st.lists(TEXT, max_size=3))),
        in_flight=_maybe(draw, record),
        cooldown_until=draw(st.sampled_from([None, NOW + timedelta(seconds=119)])),
    )


# Each builder of bot/confirm_messages.py (previews, clicks, approvals, policy refusals).
SAFE: dict[str, Callable[[Draw], messages.Reply]] = {
    "preview": lambda d: confirm_messages.preview(
        facts(d), d(TEXT)[:60] or "t", d(st.lists(TEXT, max_size=4))
    ),
    "preparing": lambda d: confirm_messages.preparing(d(TEXT)),
    "cancelled": lambda d: confirm_messages.cancelled(d(TEXT)),
    "awaiting_approval": lambda d: confirm_messages.awaiting_approval(
        d(TEXT), d(TEXT), d(st.lists(TEXT, max_size=4))
    ),
    "not_yours": lambda d: confirm_messages.not_yours(),
    "stale_action": lambda d: confirm_messages.stale_action(),
    "cannot_approve": lambda d: confirm_messages.cannot_approve(d(TEXT)),
    "policy_refused": lambda d: confirm_messages.policy_refused(
        d(TEXT),
        d(TEXT),
        d(TEXT),
        d(st.lists(TEXT, max_size=4)),
        d(st.booleans()),
        unchecked=d(st.lists(TEXT, max_size=3)),
    ),
}
APPROVAL_MESSAGES: dict[str, Callable[[Draw], dict[str, Any]]] = {
    "request": lambda d: approvals.request_message(
        Requester(user_id=d(TEXT), user_name=d(MAYBE)), _facts_text(d), "tok", d(TEXT), NOW
    ),
    "decided": lambda d: approvals.decided_message(
        d(st.sampled_from(["approved", "rejected", "expired"]) | TEXT),
        _facts_text(d),
        Requester(user_id=d(TEXT)),
        d(TEXT),
    ),
}


def _facts_text(draw: Draw) -> str:
    """The facts an approval request carries: what the preview built (escaped there)."""
    return "\n".join(facts(draw).lines())


def test_every_safe_command_builder_is_covered() -> None:
    """A new message of bot/confirm_messages.py must join SAFE, or this test fails."""
    builders = {
        name
        for name, fn in inspect.getmembers(confirm_messages, inspect.isfunction)
        if fn.__module__ == confirm_messages.__name__
        and not name.startswith("_")
        and inspect.signature(fn).return_annotation in ("Reply", messages.Reply)
    }
    assert builders == set(SAFE)


@CHECKS
@given(st.data(), st.sampled_from(sorted(SAFE)))
def test_every_safe_command_message_is_valid_block_kit(data: st.DataObject, kind: str) -> None:
    """Previews with their buttons, click answers, policy refusals: valid for any text."""
    assert_valid(SAFE[kind](data.draw).payload())


@CHECKS
@given(st.data(), st.sampled_from(sorted(APPROVAL_MESSAGES)))
def test_approval_messages_are_valid_block_kit(data: st.DataObject, kind: str) -> None:
    """The approval request and its decision, posted and updated in place."""
    assert_valid(APPROVAL_MESSAGES[kind](data.draw))


def test_every_message_builder_is_covered() -> None:
    """A new message kind in bot/messages.py must join ACKS, or this test fails."""
    builders = {
        name
        for name, fn in inspect.getmembers(messages, inspect.isfunction)
        if fn.__module__ == messages.__name__
        and not name.startswith("_")
        and inspect.signature(fn).return_annotation in ("Reply", messages.Reply)
    }
    assert builders == set(ACKS)


@CHECKS
@given(st.data(), st.sampled_from(sorted(ACKS)))
def test_every_ack_and_reply_of_the_bot_is_valid_block_kit(data: st.DataObject, kind: str) -> None:
    """Acks, help, refusals, status: valid Block Kit for any text."""
    reply = ACKS[kind](data.draw)
    assert_valid(reply.payload())


@CHECKS
@given(st.data(), STATES, st.sampled_from(list(ReplyKind)))
def test_every_outcome_reply_is_valid_block_kit(
    data: st.DataObject, state: RequestState, kind: ReplyKind
) -> None:
    """What the requester hears about each outcome: valid Block Kit for any Glider text."""
    assert_valid(render(record(data.draw, state), kind, now=NOW))


# Every job card builder (relay/slack/cards.py): rendered for any record and version.
CARDS: dict[str, Callable[[RequestRecord, int], dict[str, Any]]] = {
    "render": lambda r, v: cards.render(r, v, now=NOW),
    "plain_text": lambda r, v: cards.plain_text(r, v, now=NOW),
}


@CHECKS
@given(st.data(), STATES, st.sampled_from(sorted(CARDS)), st.integers(1, 10**9))
def test_every_job_card_is_valid_block_kit(
    data: st.DataObject, state: RequestState, builder: str, version: int
) -> None:
    """The job card in each state, for any Glider error, reason and ids (and the retry
    button of a failed rebalance only carries a well-formed request id)."""
    payload = CARDS[builder](record(data.draw, state), version)
    assert_valid(payload)
    for block in payload.get("blocks", []):
        for element in block.get("elements", []):
            if element.get("action_id") == cards.RETRY_ACTION:
                assert element["value"].startswith("req_")
                assert len(element["value"]) <= 2000


def test_the_card_examples_are_valid_block_kit() -> None:
    """What README shows is the real payload."""
    assert set(cards.EXAMPLES) >= {"card-queued", "card-submitted", "card-completed"}
    for build in cards.EXAMPLES.values():
        assert_valid(build())


def test_every_card_builder_is_checked() -> None:
    builders = {
        name
        for name, fn in inspect.getmembers(cards, inspect.isfunction)
        if fn.__module__ == cards.__name__ and not name.startswith("_")
    }
    assert builders - {"status_line"} == set(CARDS)


def _event(draw: Draw, kind: EventType) -> Event:
    error = EventError(code=draw(ERROR_CODES), message=draw(TEXT))
    data = EventData(
        requestId=draw(TEXT),
        portfolioId=draw(TEXT),
        operationId=draw(MAYBE),
        state=draw(TEXT),
        requestedBy=EventRequester(userName=draw(MAYBE)),
        error=error if kind is EventType.FAILED else None,
    )
    return Event(type=kind, data=data)


def _shown(alert: Alert, *, opened: bool = False) -> dict[str, object]:
    """The message an alert's change shows, stored as ``webhook_keys.lua`` stores it (on an
    alert opened before, for a resolve)."""
    change = json.loads(alert.change)
    fields = {"h": "open", "d": "detail", "act": "1", "to": "C_ONCALL"} if opened else {}
    if change["op"] == "open":
        fields.update({"h": change["h"], "d": change["d"], "act": change["act"]})
    elif change["op"] == "resolve":
        fields.update({"ra": change["at"], "rn": change["note"]})
    stored = StoredAlert.from_hash(alert.marker, fields)
    assert stored.state is not None
    return alert_view.render(stored.state, "C_ONCALL")


@CHECKS
@given(st.data(), st.sampled_from([EventType.FAILED, EventType.COMPLETED]))
def test_on_call_alerts_are_valid_block_kit(data: st.DataObject, kind: EventType) -> None:
    """The on-call channel's alert and its resolve, for any Glider error."""
    rules = OnCallRules(slack_channel="C_ONCALL", pagerduty=True)
    alerts = event_alerts(_event(data.draw, kind), rules)
    slack = [a for a in alerts if a.target == SLACK_TARGET]
    assert len(slack) == 1
    assert_valid(_shown(slack[0], opened=kind is EventType.COMPLETED))


@CHECKS
@given(TEXT, st.sampled_from([GONE, "failing"]))
def test_subscription_disabled_alert_is_valid_block_kit(subscription_id: str, reason: str) -> None:
    """The alert for a disabled subscription, whatever its id."""
    (alert,) = disabled_alerts(subscription_id, reason, OnCallRules(slack_channel="C_ONCALL"))
    assert_valid(_shown(alert))


def _alert_state(draw: Draw) -> alert_view.AlertState:
    """An alert of drawn Glider text, in a drawn state (open, acked, acted on, resolved)."""
    headline = escape(draw(TEXT))
    state = alert_view.AlertState(draw(TEXT), headline, escape(draw(TEXT)), draw(st.booleans()))
    if draw(st.booleans()):
        state = state.acknowledge(draw(TEXT), NOW)
    for _ in range(draw(st.integers(0, 8))):
        state = state.did(draw(TEXT), draw(TEXT), NOW)
    if draw(st.booleans()):
        state = state.resolve(escape(draw(TEXT)), NOW)
    return state


# Each state of the on-call alert (relay/webhooks/alert_view.py), and its README examples.
ALERTS: dict[str, Callable[[Draw], dict[str, Any]]] = {
    "render": lambda d: alert_view.render(_alert_state(d), "C_ONCALL"),
}


def _example(build: Callable[[], dict[str, Any]]) -> Callable[[Draw], dict[str, Any]]:
    return lambda _draw: build()


ALERTS.update({name: _example(build) for name, build in alert_view.EXAMPLES.items()})


@CHECKS
@given(st.data(), st.sampled_from(sorted(ALERTS)))
def test_on_call_alert_states_are_valid_block_kit(data: st.DataObject, kind: str) -> None:
    """Open, acknowledged, retried, paused and resolved alerts: valid for any text."""
    payload = ALERTS[kind](data.draw)
    assert_valid(payload)
    buttons = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert all(len(e["value"]) <= 2000 for b in buttons for e in b["elements"])


def test_alert_buttons_follow_its_state() -> None:
    """Open: ack, retry, pause; acknowledged: retry, pause; resolved: none."""
    state = alert_view.AlertState("glider-relay:portfolio:pf_1", "h", "d")

    def actions(s: alert_view.AlertState) -> list[str]:
        blocks = alert_view.render(s, "C1")["blocks"]
        return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]

    assert actions(state) == ["oncall.ack", "oncall.retry", "oncall.pause"]
    acked = state.acknowledge("U2", NOW)
    assert actions(acked) == ["oncall.retry", "oncall.pause"]
    assert "<@U2>" in json.dumps(alert_view.render(acked, "C1"))
    assert actions(acked.resolve("ok", NOW)) == []
    assert actions(alert_view.AlertState("m", "h", "d", actionable=False)) == []


@CHECKS
@given(TEXT, TEXT, TEXT)
def test_the_block_builders_fit_any_text(title: str, body: str, note: str) -> None:
    """header, section and context, fed raw outside text, still make a valid message."""
    blocks = [header(title), section(body), context(note)] * 20
    payload = message(body, blocks)
    assert len(payload["blocks"]) == 50
    assert message_errors(payload) == []
