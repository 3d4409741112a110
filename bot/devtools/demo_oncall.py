"""The demo's on-call part: the failure alert, acknowledged from its button, kept current."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.devtools.demo_approval import DEMO_USER
from bot.devtools.slack_standin import SlackMessage, button_value, message_text

if TYPE_CHECKING:
    from bot.devtools.demo import Demo


async def oncall_story(demo: Demo, channel: str) -> None:
    """The alert in ``channel``, its Acknowledge clicked, the same message updated."""
    alert: SlackMessage = await demo.step(
        f"on-call alert in {channel}",
        demo.stack.slack.wait_for(lambda m: m.via == "chat.postMessage" and m.channel == channel),
    )
    demo.say(f"on-call alert in {channel}: {alert.text}")
    marker = button_value(alert.payload, "oncall.ack")
    if marker is None:
        raise demo.failed("the on-call alert has no Acknowledge button")
    answer = await demo.click("oncall.ack", marker, DEMO_USER, "Acknowledged")
    demo.say(f"{DEMO_USER} clicks Acknowledge: {answer.text}")
    updated: SlackMessage = await demo.step(
        "on-call alert updated in place",
        demo.stack.slack.wait_for(lambda m: m.via == "chat.update" and m.channel == channel),
    )
    demo.say(f"on-call alert updated in place (chat.update): {message_text(updated)}")
