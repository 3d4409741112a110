"""When a rebalance may be POSTed, and what every answer means: pure rules, no I/O.

Glider has no idempotency key, so one Slack command must never be POSTed again once
a POST of it may have reached Glider: the operation it started may already have
ended (a failed or cancelled one leaves no trace we can look up without its id), and
a second POST would then start a second run. A POST is *in doubt* from the moment it
is about to leave (noted in the request record first) until an answer proves Glider
refused it before doing anything: a failed connect, the per-IP limiter's 429, or a
4xx refusal. A timeout, a reset connection, a truncated or malformed answer and any
5xx (a proxy may answer 502 after Glider ran the request) leave it in doubt.

In doubt, the only sure news Glider can give is ``lastRebalanceAt`` moving past the
doubtful POST: a rebalance of the portfolio completed since, so the command is
reported completed. The in-flight replay of the operation id would tell more, but
only a POST obtains it, and that POST is the very risk. So the request re-checks the
portfolio with backoff until ``deadline_s`` after the doubtful POST, then ends
``failed`` with code ``unknown_outcome`` and a message to check Glider. That verdict
rests on a check Glider answered: a check that failed at the deadline (a 5xx, a 429, a
timeout) is no news, so checks go on for up to ``answer_grace_s`` more, for one that
Glider answers (a 4xx refusal of the read is an answer too); only then is the outcome
unknown because Glider could not be asked.

:func:`decide` maps what is known (:class:`PostLog`, the persisted record of our
POSTs, and the latest :class:`Answer`) to the next step; the executor carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from relay.core.clock import to_ms
from relay.core.error_codes import error_code, error_message
from relay.glider import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderError,
    GliderUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
)

UNKNOWN_OUTCOME = "unknown_outcome"
NOT_PROCESSED = "not_processed"  # the relay gave up on a queued command (dead-lettered)


@dataclass(frozen=True, slots=True)
class PostLog:
    """What the request record says about our POSTs (it survives a worker's SIGKILL)."""

    first_ms: int | None = None  # when the first POST was about to leave
    posts: int = 0  # POSTs about to leave or sent
    refused: int = 0  # of those, proven never processed by Glider
    doubt_ms: int | None = None  # when the POST in doubt was about to leave

    @property
    def in_doubt(self) -> bool:
        """A POST may have reached Glider and no answer proved otherwise."""
        return self.posts > self.refused

    @property
    def anchor_ms(self) -> int | None:
        """From when a completed rebalance counts as ours (records of older workers lack
        ``doubt_ms``: their first POST is the earliest that may have landed)."""
        return self.doubt_ms if self.doubt_ms is not None else self.first_ms


class Kind(StrEnum):
    """What one exchange with Glider told us."""

    ACCEPTED = "accepted"  # 202: the operation id
    REFUSED = "refused"  # 4xx / cooldown 429: Glider did nothing (when nothing was in doubt)
    NOT_SENT = "not_sent"  # never processed (connect failed, per-IP 429): may be sent again
    UNSURE = "unsure"  # sent, and no answer that proves it was refused
    CHECKED = "checked"  # GET portfolio answered with its lastRebalanceAt
    CHECK_FAILED = "check_failed"  # GET portfolio gave no usable answer


@dataclass(frozen=True, slots=True)
class Answer:
    kind: Kind
    code: str = ""  # our error code (relay.core.error_codes) for refusals and failures
    message: str = ""
    retry_after_s: float | None = None
    # NOT_SENT: whether sending again can help (TLS failures cannot); CHECK_FAILED: whether
    # asking again can (a 4xx refusal of the read is Glider's answer, and will not change).
    retryable: bool = True
    operation_id: str | None = None
    submitted_at: datetime | None = None
    last_rebalance_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    retry_budget_s: float = 300.0  # how long a never-processed POST is tried again
    retry_cap_s: float = 30.0
    deadline_s: float = 900.0  # how long a POST in doubt is watched for
    answer_grace_s: float = 300.0  # past the deadline, how long failed checks are retried
    check_min_s: float = 1.0
    check_cap_s: float = 30.0
    check_fraction: float = 0.25  # re-check after this share of the time in doubt so far


class Step(StrEnum):
    POST = "post"
    CHECK = "check"  # GET the portfolio after ``wait_s``
    TRACK = "track"  # Glider accepted: follow ``operation_id``
    COMPLETED = "completed"  # lastRebalanceAt moved past our doubtful POST
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    wait_s: float = 0.0
    code: str = ""
    message: str = ""
    retry_after_s: float | None = None  # REJECTED cooldown: when to retry
    operation_id: str | None = None
    submitted_at: datetime | None = None
    completed_at: datetime | None = None


def decide(
    log: PostLog, answer: Answer | None, now_ms: int, rules: Rules, *, backoff_s: float = 0.0
) -> Decision:
    """The next step for a queued rebalance. ``answer`` is the latest exchange's (None
    before any in this delivery); ``backoff_s`` is the wait a retry of a never-processed
    POST would take (computed by the caller, as it is random)."""
    if answer is not None and answer.kind is Kind.ACCEPTED:
        return Decision(
            Step.TRACK, operation_id=answer.operation_id, submitted_at=answer.submitted_at
        )
    if log.in_doubt:
        return _in_doubt(log, answer, now_ms, rules)
    if answer is None:
        return Decision(Step.POST)
    if answer.kind is Kind.REFUSED:
        return Decision(
            Step.REJECTED,
            code=answer.code,
            message=answer.message,
            retry_after_s=answer.retry_after_s,
        )
    # NOT_SENT (UNSURE and the checks imply doubt, handled above).
    spent_s = (now_ms - (log.first_ms or now_ms)) / 1000
    if not answer.retryable or spent_s + backoff_s > rules.retry_budget_s:
        attempts = f" (after {log.posts} attempts)" if log.posts else ""
        return Decision(Step.FAILED, code=answer.code, message=answer.message + attempts)
    return Decision(Step.POST, wait_s=backoff_s)


def _in_doubt(log: PostLog, answer: Answer | None, now_ms: int, rules: Rules) -> Decision:
    """A POST may have reached Glider: never POST; look for our completion until the deadline.

    A cooldown 429 (or any refusal) of a later POST changes nothing: the earlier POST in
    doubt is probably what Glider is cooling down from.
    """
    anchor = log.anchor_ms if log.anchor_ms is not None else now_ms
    last = answer.last_rebalance_at if answer is not None else None
    if last is not None and to_ms(last) >= anchor:
        return Decision(Step.COMPLETED, completed_at=last)
    elapsed_s = max(0.0, (now_ms - anchor) / 1000)
    left_s = rules.deadline_s - elapsed_s
    if answer is None or answer.kind not in (Kind.CHECKED, Kind.CHECK_FAILED):
        # Nothing checked yet in this delivery: look first (soon after our own POST).
        first = rules.check_min_s if answer is not None else 0.0
        return Decision(Step.CHECK, wait_s=max(0.0, min(first, left_s)))
    if left_s <= 0:
        # The verdict needs a check Glider answered; a failed one earns more, within the grace.
        left_s += rules.answer_grace_s
        if answer.kind is Kind.CHECKED or not answer.retryable or left_s <= 0:
            return Decision(Step.FAILED, code=UNKNOWN_OUTCOME, message=unknown_message(answer))
    wait = min(rules.check_cap_s, max(rules.check_min_s, rules.check_fraction * elapsed_s))
    wait = max(wait, answer.retry_after_s or 0.0)  # Glider's Retry-After is a floor
    return Decision(Step.CHECK, wait_s=min(wait, left_s))


REFUSALS = (BadRequest, Unauthorized, Forbidden, NotFound, CooldownActive)


def post_answer(exc: GliderError) -> Answer:
    """What a failed POST proves: refused, never processed, or nothing (in doubt)."""
    code, message = error_code(exc), error_message(exc)
    if isinstance(exc, REFUSALS):
        return Answer(Kind.REFUSED, code, message, retry_after_s=exc.retry_after)
    if isinstance(exc, GliderUnavailable) and not exc.request_sent:
        return Answer(Kind.NOT_SENT, code, message, retryable=exc.retryable)
    if isinstance(exc, RateLimited):
        # Glider's per-IP limiter answers before anything runs.
        return Answer(Kind.NOT_SENT, code, message, retry_after_s=exc.retry_after)
    return Answer(Kind.UNSURE, code, message)


def check_failed(exc: GliderError) -> Answer:
    return Answer(
        Kind.CHECK_FAILED,
        error_code(exc),
        error_message(exc),
        retry_after_s=exc.retry_after,
        retryable=not isinstance(exc, REFUSALS),
    )


def unknown_message(answer: Answer) -> str:
    """What the requester reads when Glider never confirmed the rebalance either way."""
    last = answer.message or "no answer"
    if answer.kind is Kind.CHECKED:
        since = "reports no rebalance completed since"
    elif not answer.retryable:
        since = f"refuses to show the portfolio since (last check: {last})"
    else:
        since = f"could not be asked since (last check: {last})"
    return (
        f"Glider never answered the rebalance request and {since}, so the relay cannot "
        "tell whether it ran; it will not send it again. "
        "Check the portfolio on Glider before retrying."
    )


def not_processed_message(rebalance: bool, log: PostLog, reason: str) -> str:
    """What the requester reads when the relay gave up on a queued command (its entry went
    to the dead letters: ``reason``): whether any of it may have reached Glider."""
    gave_up = f"The relay gave up on this command ({reason})"
    if not rebalance:
        return f"{gave_up}; Glider may or may not have applied it. Sending it again is safe."
    if log.in_doubt:
        return (
            f"{gave_up} after its rebalance request may have reached Glider; it will not be "
            "sent again. Check the portfolio on Glider before retrying."
        )
    return f"{gave_up}; no rebalance request of it reached Glider. Send it again to retry."
