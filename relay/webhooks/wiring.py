"""The dispatcher wired from the settings: HTTP session, Slack client, on-call rules."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp.abc import AbstractResolver

from relay.settings import Settings
from relay.slack.client import create_slack_api
from relay.webhooks.alert_sender import AlertSender
from relay.webhooks.dispatcher import Dispatcher, DispatcherConfig
from relay.webhooks.oncall import OnCallRules
from relay.webhooks.sender import OnCallConfig, Sender, make_session


def oncall_rules(settings: Settings) -> OnCallRules:
    """Slack alerts need a channel and a bot token; PagerDuty needs its routing key."""
    channel = settings.oncall_slack_channel if settings.slack_bot_token else None
    return OnCallRules(slack_channel=channel, pagerduty=settings.pagerduty_routing_key is not None)


def build_dispatcher(
    redis: aioredis.Redis,
    settings: Settings,
    *,
    config: DispatcherConfig | None = None,
    resolver: AbstractResolver | None = None,
    consumer: str | None = None,
) -> Dispatcher:
    """A :class:`Dispatcher` from the settings; ``await dispatcher.close()`` when done."""
    # Retries of on-call messages are the delivery queue's job, not the Slack client's.
    slack = create_slack_api(settings, max_retries=0)
    session = make_session(allow_private=settings.relay_allow_private_urls, resolver=resolver)
    oncall = OnCallConfig(
        slack=slack,
        alerts=AlertSender(redis),
        pagerduty_url=str(settings.pagerduty_events_url),
        pagerduty_routing_key=settings.pagerduty_routing_key,
    )
    sender = Sender(session, allow_private=settings.relay_allow_private_urls, oncall=oncall)
    return Dispatcher(redis, sender, rules=oncall_rules(settings), config=config, consumer=consumer)
