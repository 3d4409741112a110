"""The rebalance POST rules (relay.core.post_rules), without sockets: what may be sent, and what
every answer of Glider means for the requester."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from relay.core.post_rules import (
    UNKNOWN_OUTCOME,
    Answer,
    Kind,
    PostLog,
    Rules,
    Step,
    check_failed,
    decide,
    post_answer,
)
from relay.glider import (
    BadRequest,
    CooldownActive,
    GliderTimeout,
    GliderUnavailable,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
)

T0 = 1_800_000_000_000  # our first POST, ms
RULES = Rules(retry_budget_s=300, deadline_s=900)
IN_DOUBT = PostLog(first_ms=T0, posts=1, refused=0, doubt_ms=T0)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def checked(last_ms: int | None) -> Answer:
    return Answer(Kind.CHECKED, last_rebalance_at=None if last_ms is None else at(last_ms))


logs = st.builds(
    PostLog,
    first_ms=st.just(T0),
    posts=st.integers(0, 6),
    refused=st.integers(0, 6),
    doubt_ms=st.one_of(st.none(), st.integers(T0, T0 + 600_000)),
)
answers = st.one_of(
    st.none(),
    st.builds(
        Answer,
        kind=st.sampled_from([k for k in Kind if k is not Kind.ACCEPTED]),
        retryable=st.booleans(),
    ),
    st.builds(
        Answer,
        kind=st.just(Kind.CHECKED),
        last_rebalance_at=st.one_of(st.none(), st.integers(T0 - 60_000, T0 + 60_000).map(at)),
    ),
)


def test_a_fresh_request_posts_and_a_202_is_tracked() -> None:
    assert decide(PostLog(), None, T0, RULES).step is Step.POST
    accepted = Answer(Kind.ACCEPTED, operation_id="op-1", submitted_at=at(T0))
    decision = decide(IN_DOUBT, accepted, T0, RULES)
    assert (decision.step, decision.operation_id) == (Step.TRACK, "op-1")


@given(log=logs, answer=answers, elapsed_ms=st.integers(0, 2_000_000))
def test_nothing_is_posted_while_a_post_may_have_reached_glider(
    log: PostLog, answer: Answer | None, elapsed_ms: int
) -> None:
    """The one rule: in doubt, whatever else is known, the next step is never a POST."""
    decision = decide(log, answer, T0 + elapsed_ms, RULES, backoff_s=1.0)
    if log.in_doubt:
        assert decision.step is not Step.POST
    if decision.step is Step.POST:
        assert not log.in_doubt


@given(answer=answers, elapsed_ms=st.integers(0, 2_000_000))
def test_in_doubt_only_completed_or_unknown_can_end_it(
    answer: Answer | None, elapsed_ms: int
) -> None:
    """A requester in doubt hears completed (lastRebalanceAt past the POST) or, at the
    deadline, unknown_outcome; never a refusal or an ordinary failure."""
    decision = decide(IN_DOUBT, answer, T0 + elapsed_ms, RULES)
    assert decision.step in (Step.CHECK, Step.COMPLETED, Step.FAILED)
    deadline_ms = RULES.deadline_s * 1000
    last_ms = (RULES.deadline_s + RULES.answer_grace_s) * 1000
    if decision.step is Step.FAILED:
        assert decision.code == UNKNOWN_OUTCOME
        assert elapsed_ms >= deadline_ms
        # Unknown rests on a check Glider answered, or on the grace for one running out.
        assert answer is not None
        assert answer.kind is Kind.CHECKED or not answer.retryable or elapsed_ms >= last_ms
    if decision.step is Step.CHECK:
        assert 0 <= decision.wait_s <= RULES.check_cap_s
        # Never waits past the deadline (past it, a failed check is looked again within the
        # grace, never past its end).
        ends_ms = elapsed_ms + decision.wait_s * 1000
        bound = deadline_ms if elapsed_ms < deadline_ms else last_ms
        assert decision.wait_s == 0 or ends_ms <= bound


def test_a_rebalance_completed_since_the_post_in_doubt_is_ours() -> None:
    decision = decide(IN_DOUBT, checked(T0 + 4_000), T0 + 5_000, RULES)
    assert (decision.step, decision.completed_at) == (Step.COMPLETED, at(T0 + 4_000))
    # One completed before our POST is an earlier run: keep checking.
    assert decide(IN_DOUBT, checked(T0 - 1), T0 + 5_000, RULES).step is Step.CHECK


def test_checks_back_off_until_the_deadline_then_unknown_outcome() -> None:
    waits = []
    now = T0
    while (decision := decide(IN_DOUBT, checked(None), now, RULES)).step is Step.CHECK:
        waits.append(decision.wait_s)
        now += int(decision.wait_s * 1000)
    assert waits[:-1] == sorted(waits[:-1])  # backoff (the last one ends at the deadline)
    assert max(waits) == RULES.check_cap_s
    assert now == T0 + RULES.deadline_s * 1000  # the deadline itself is looked at once
    assert (decision.step, decision.code) == (Step.FAILED, UNKNOWN_OUTCOME)
    assert "Check the portfolio on Glider" in decision.message


def test_a_failed_check_is_no_news() -> None:
    """Glider timing out on the check is not an answer: wait and check again, past the
    deadline too (within the grace), for one that Glider answers."""
    failed = check_failed(GliderTimeout("no answer within 10s"))
    deadline_ms = int(RULES.deadline_s * 1000)
    assert decide(IN_DOUBT, failed, T0 + 10_000, RULES).step is Step.CHECK
    again = decide(IN_DOUBT, failed, T0 + deadline_ms, RULES)
    assert again.step is Step.CHECK
    assert 0 < again.wait_s <= RULES.check_cap_s
    # The next look is answered and shows our rebalance: completed, not unknown.
    late = decide(IN_DOUBT, checked(T0 + 5_000), T0 + deadline_ms + 30_000, RULES)
    assert late.step is Step.COMPLETED
    # Answered and nothing completed: unknown, and it says Glider reported nothing.
    nothing = decide(IN_DOUBT, checked(None), T0 + deadline_ms + 30_000, RULES)
    assert nothing.code == UNKNOWN_OUTCOME
    assert "reports no rebalance completed since" in nothing.message
    # Never answered within the grace either: unknown, and it says Glider could not be asked.
    grace_ms = int(RULES.answer_grace_s * 1000)
    final = decide(IN_DOUBT, failed, T0 + deadline_ms + grace_ms, RULES)
    assert final.code == UNKNOWN_OUTCOME
    assert "could not be asked since" in final.message
    assert "no answer within 10s" in final.message
    # A refused read (the portfolio is not found) is Glider's answer: unknown at the deadline.
    refused = check_failed(NotFound("portfolio not found", status=404))
    assert decide(IN_DOUBT, refused, T0 + 10_000, RULES).step is Step.CHECK
    verdict = decide(IN_DOUBT, refused, T0 + deadline_ms, RULES)
    assert verdict.code == UNKNOWN_OUTCOME
    assert "refuses to show the portfolio" in verdict.message


def test_a_cooldown_after_a_post_in_doubt_is_probably_ours() -> None:
    """Truncated 202, then a 429 cooldown for a later POST: not 'cooldown', keep resolving."""
    earlier_in_doubt = PostLog(first_ms=T0, posts=2, refused=1, doubt_ms=T0)
    cooldown = post_answer(CooldownActive("too soon", status=429, retry_after=8))
    assert cooldown.kind is Kind.REFUSED
    assert decide(earlier_in_doubt, cooldown, T0 + 2_000, RULES).step is Step.CHECK
    decision = decide(earlier_in_doubt, checked(T0 + 1_000), T0 + 3_000, RULES)
    assert decision.step is Step.COMPLETED


def test_a_cooldown_with_nothing_in_doubt_is_a_rejection() -> None:
    refused = PostLog(first_ms=T0, posts=1, refused=1)
    cooldown = post_answer(CooldownActive("too soon", status=429, retry_after=8))
    decision = decide(refused, cooldown, T0, RULES)
    assert (decision.step, decision.code, decision.retry_after_s) == (Step.REJECTED, "cooldown", 8)


def test_what_each_post_failure_proves() -> None:
    """Only a failed connect and the per-IP limiter prove Glider never ran the POST."""
    assert post_answer(NotFound("no such portfolio", status=404)).kind is Kind.REFUSED
    assert post_answer(BadRequest("bad", status=400)).kind is Kind.REFUSED
    refused_connect = GliderUnavailable("cannot connect", request_sent=False)
    assert post_answer(refused_connect).kind is Kind.NOT_SENT
    assert post_answer(RateLimited("slow down", status=429, retry_after=2)).kind is Kind.NOT_SENT
    reset = GliderUnavailable("connection reset", request_sent=True)
    for unsure in (
        reset,
        GliderTimeout("no answer"),
        ServerError("bad gateway", status=502),
        MalformedResponse("truncated", status=202),
    ):
        assert post_answer(unsure).kind is Kind.UNSURE, unsure


def test_never_sent_posts_are_retried_within_the_budget_then_fail() -> None:
    log = PostLog(first_ms=T0, posts=3, refused=3)
    not_sent = post_answer(GliderUnavailable("cannot connect", request_sent=False))
    retry = decide(log, not_sent, T0 + 10_000, RULES, backoff_s=4.0)
    assert (retry.step, retry.wait_s) == (Step.POST, 4.0)
    late = decide(log, not_sent, T0 + 299_000, RULES, backoff_s=4.0)
    assert (late.step, late.code) == (Step.FAILED, "unavailable")
    assert "after 3 attempts" in late.message
    tls = GliderUnavailable("TLS failure", request_sent=False, permanent=True)
    assert decide(log, post_answer(tls), T0, RULES).step is Step.FAILED


def test_records_of_older_workers_count_from_their_first_post() -> None:
    """A record noted before x_doubt_ms existed: its first POST is the anchor."""
    old = PostLog(first_ms=T0, posts=2)
    assert old.in_doubt
    assert decide(old, checked(T0 + 1), T0 + 5_000, RULES).step is Step.COMPLETED


def test_a_retry_after_on_a_check_is_a_floor() -> None:
    limited = check_failed(RateLimited("slow down", status=429, retry_after=12))
    assert decide(IN_DOUBT, limited, T0 + 2_000, RULES).wait_s == 12


@dataclass
class ModelGlider:
    """Glider as the rules see it, drawn by hypothesis: each POST either never runs (its
    failure proves it, or the answer is lost) or starts a run whose answer may be lost;
    the run ends ``outcome`` after ``duration_ms``; any check may fail."""

    script: list[tuple[bool, bool]]  # per POST: (runs, answer arrives)
    outcome: str
    duration_ms: int
    check_fails: list[bool]
    operations: list[int] = field(default_factory=list)  # start times

    def post(self, now_ms: int) -> Answer:
        runs, answered = self.script.pop(0) if self.script else (True, True)
        in_flight = any(now_ms < start + self.duration_ms for start in self.operations)
        if runs and not in_flight:  # Glider's in-flight replay: no second run meanwhile
            self.operations.append(now_ms)
        if answered and runs:
            return Answer(Kind.ACCEPTED, operation_id="op", submitted_at=at(now_ms))
        if answered:
            return Answer(Kind.NOT_SENT, "unavailable", "cannot connect")
        return Answer(Kind.UNSURE, "timeout", "no answer")

    def check(self, now_ms: int) -> Answer:
        if self.check_fails and self.check_fails.pop(0):
            return Answer(Kind.CHECK_FAILED, "timeout", "no answer")
        done = [s + self.duration_ms for s in self.operations if s + self.duration_ms <= now_ms]
        completed = self.outcome == "completed" and done
        return checked(done[0] if completed else T0 - 86_400_000)


@given(
    script=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=6),
    outcome=st.sampled_from(["completed", "failed", "cancelled"]),
    duration_ms=st.integers(0, 1_200_000),
    check_fails=st.lists(st.booleans(), max_size=40),
)
def test_whatever_glider_does_one_operation_and_a_true_outcome(
    script: list[tuple[bool, bool]], outcome: str, duration_ms: int, check_fails: list[bool]
) -> None:
    """Drive decide() against the model until the request ends: Glider never gets a second
    run, and the requester hears Glider's truth or, only after a lost answer, unknown."""
    glider = ModelGlider(list(script), outcome, duration_ms, list(check_fails))
    log, answer, now, lost = PostLog(), None, T0, False
    for _ in range(500):
        decision = decide(log, answer, now, RULES, backoff_s=2.0)
        now += int(decision.wait_s * 1000)
        if decision.step is Step.POST:
            doubt = PostLog(log.first_ms or now, log.posts + 1, log.refused, now)
            answer = glider.post(now)
            lost = lost or answer.kind is Kind.UNSURE
            refused = answer.kind is Kind.NOT_SENT
            log = replace(doubt, refused=doubt.refused + 1, doubt_ms=None) if refused else doubt
        elif decision.step is Step.CHECK:
            answer = glider.check(now)
        else:
            break
    assert len(glider.operations) <= 1
    if decision.step is Step.TRACK:
        assert glider.operations
    elif decision.step is Step.COMPLETED:
        assert glider.operations
        assert outcome == "completed"
    elif decision.code == UNKNOWN_OUTCOME:
        assert lost
    else:
        assert decision.step is Step.FAILED
        assert not glider.operations  # an ordinary failure: Glider never ran it
