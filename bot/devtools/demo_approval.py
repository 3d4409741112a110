"""The demo's approval chapter: a rule that needs a second person, decided in Slack.

``glider-relay demo`` runs with :data:`DEMO_POLICY` (written to a temporary file):
the Treasury portfolio needs an approver's yes. The requester confirms, the request
appears in the approvals channel, the requester's own Approve is refused, the
approver's is taken, the message is updated in place and the rebalance runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.devtools.slack_standin import SlackMessage, button_value
from relay.settings import Settings
from relay.sim.config import PF_ULID

if TYPE_CHECKING:
    from bot.devtools.demo import Demo

DEMO_USER = "U0DEMO"
APPROVER = "U0APPROVER"
APPROVALS_CHANNEL = "C0APPROVALS"
DEMO_POLICY = f"""
[roles]
operators = ["{DEMO_USER}"]
approvers = ["{APPROVER}"]

[[rules]]
portfolios = ["{PF_ULID}"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
approve = ["approvers"]
require_approval = true

[[rules]]
portfolios = ["*"]
rebalance = ["operators"]
pause = ["operators"]
resume = ["operators"]
"""


def with_demo_policy(env: Settings) -> Settings:
    """``env`` with the demo's policy file and approvals channel (the caller removes the file)."""
    handle, name = tempfile.mkstemp(prefix="glider-relay-demo-", suffix=".toml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(DEMO_POLICY)
    return env.model_copy(
        update={"relay_policy_file": Path(name), "approvals_slack_channel": APPROVALS_CHANNEL}
    )


async def approval_story(demo: Demo) -> None:
    """Request, confirm, self-approval refused, approval, update in place, completion."""
    demo.say(f"sending /rebalance {PF_ULID}: the policy asks a second person to approve it")
    await demo.slash_preview(PF_ULID)
    posted: SlackMessage = await demo.step(
        f"approval request in {APPROVALS_CHANNEL}",
        demo.stack.slack.wait_for(
            lambda m: m.via == "chat.postMessage" and m.channel == APPROVALS_CHANNEL
        ),
    )
    demo.say(f"approval request posted in {APPROVALS_CHANNEL}: {posted.text}")
    token = button_value(posted.payload, "approval.approve")
    if token is None:
        raise demo.failed("the approval request has no Approve button")
    own = await demo.click("approval.approve", token, DEMO_USER, "someone else")
    demo.say(f"the requester's own Approve is refused: {own.text}")
    mine = await demo.click("approval.approve", token, APPROVER, "Approved")
    demo.say(f"{APPROVER} approves: {mine.text}")
    updated: SlackMessage = await demo.step(
        "request updated in place",
        demo.stack.slack.wait_for(
            lambda m: m.via == "chat.update" and m.channel == APPROVALS_CHANNEL
        ),
    )
    demo.say(f"request updated in place (chat.update): {updated.text}")
    request_id = next(
        (w for w in updated.text.replace("`", " ").split() if w.startswith("req_")), ""
    )
    await demo.webhook("rebalance.approved", request_id)
    await demo.webhook("rebalance.completed", request_id)
