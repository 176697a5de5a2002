"""The work-order state machine table, checked as a whole (pure, no database)."""

from __future__ import annotations

import pytest

from cloud_ingest.auth.models import Role
from cloud_ingest.work_orders.lifecycle import (
    DONE_STATES,
    OPEN_STATES,
    TRANSITIONS,
    Action,
    ActionForbiddenError,
    IllegalActionError,
    InvalidPayloadError,
    OrderFacts,
    State,
    allowed_actions,
    decide,
)

PAYLOAD = {
    "reason": "r",
    "assignee": "tech-a",
    "result": "fixed",
    "comment": "c",
    "rating": 4,
}


def test_every_action_has_a_row_and_every_state_is_reachable() -> None:
    assert set(TRANSITIONS) == set(Action)
    targets = {t.target for t in TRANSITIONS.values() if t.target is not None}
    assert targets | {State.NEW} | {State.REWORK} == set(State)
    assert OPEN_STATES.isdisjoint(DONE_STATES)
    assert set(State) == OPEN_STATES | DONE_STATES | {State.CANCELLED}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("role", list(Role))
def test_decide_agrees_with_the_table_for_every_state_role_and_action(
    state: State, role: Role
) -> None:
    allowed = allowed_actions(state, role)
    for action, row in TRANSITIONS.items():
        facts = OrderFacts(state, assignee="me", handler="someone", requester="me")
        if state not in row.sources:
            with pytest.raises(IllegalActionError) as err:
                decide(facts, action.value, "me", role, PAYLOAD)
            assert err.value.state is state
            assert err.value.allowed == allowed
            assert action.value not in allowed
        elif role not in row.roles:
            with pytest.raises(ActionForbiddenError):
                decide(facts, action.value, "me", role, PAYLOAD)
        else:
            decision = decide(facts, action.value, "me", role, PAYLOAD)
            assert decision.from_state is state
            assert decision.to_state is (row.target or state)
            assert action.value in allowed


def test_the_main_loop() -> None:
    steps = [
        (State.NEW, "accept", State.ACCEPTED),
        (State.ACCEPTED, "dispatch", State.DISPATCHED),
        (State.DISPATCHED, "reject", State.ACCEPTED),
        (State.DISPATCHED, "start", State.IN_PROGRESS),
        (State.IN_PROGRESS, "hold", State.ON_HOLD),
        (State.ON_HOLD, "resume", State.IN_PROGRESS),
        (State.IN_PROGRESS, "submit", State.AWAITING_VERIFICATION),
        (State.AWAITING_VERIFICATION, "verify", State.CLOSED),
        (State.CLOSED, "rate", State.RATED),
        (State.RATED, "follow_up", State.FOLLOWED_UP),
        (State.FOLLOWED_UP, "reopen", State.REOPENED),
        (State.REOPENED, "rework", State.REWORK),
        (State.REWORK, "dispatch", State.DISPATCHED),
    ]
    for state, action, target in steps:
        facts = OrderFacts(state, assignee="sup", handler="tech")
        assert decide(facts, action, "sup", Role.SUPERVISOR, PAYLOAD).to_state is target


def test_an_unknown_action_is_illegal_and_names_the_allowed_ones() -> None:
    with pytest.raises(IllegalActionError) as err:
        decide(OrderFacts(State.NEW), "explode", "op", Role.OPERATOR, {})
    assert err.value.allowed == ["accept", "cancel", "escalate", "comment"]


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (State.NEW, "cancel"),
        (State.DISPATCHED, "reject"),
        (State.IN_PROGRESS, "hold"),
        (State.AWAITING_VERIFICATION, "rework"),
        (State.CLOSED, "reopen"),
        (State.NEW, "escalate"),
    ],
)
def test_a_reason_is_required(state: State, action: str) -> None:
    for payload in ({}, {"reason": "   "}):
        with pytest.raises(InvalidPayloadError, match="reason"):
            decide(OrderFacts(state), action, "sup", Role.SUPERVISOR, payload)


def test_the_verifier_must_not_be_the_handler() -> None:
    facts = OrderFacts(State.AWAITING_VERIFICATION, handler="sup")
    with pytest.raises(ActionForbiddenError, match="verifier"):
        decide(facts, "verify", "sup", Role.SUPERVISOR, {})
    decision = decide(facts, "verify", "op", Role.OPERATOR, {})
    assert decision.changes == {"verifier": "op"}
    assert decision.timestamp_column == "closed_at"


def test_a_technician_acts_only_on_an_order_dispatched_to_them() -> None:
    facts = OrderFacts(State.DISPATCHED, assignee="tech-1")
    with pytest.raises(ActionForbiddenError):
        decide(facts, "start", "tech-2", Role.TECHNICIAN, {})
    assert decide(facts, "start", "tech-1", Role.TECHNICIAN, {}).to_state is State.IN_PROGRESS


@pytest.mark.parametrize(
    ("rating", "target"), [(1, State.REWORK), (2, State.REWORK), (3, State.RATED), (5, State.RATED)]
)
def test_a_bad_rating_sends_the_order_to_rework(rating: int, target: State) -> None:
    facts = OrderFacts(State.CLOSED, requester="res")
    decision = decide(facts, "rate", "res", Role.RESIDENT, {"rating": rating, "comment": "ok"})
    assert decision.to_state is target
    assert decision.counts_rework is (target is State.REWORK)
    assert decision.changes["rating"] == rating


@pytest.mark.parametrize("rating", [0, 6, "5", True, None, 2.5])
def test_a_rating_out_of_range_is_refused(rating: object) -> None:
    with pytest.raises(InvalidPayloadError, match="rating"):
        decide(OrderFacts(State.CLOSED), "rate", "op", Role.OPERATOR, {"rating": rating})


def test_a_resident_rates_only_their_own_request() -> None:
    with pytest.raises(ActionForbiddenError):
        decide(
            OrderFacts(State.CLOSED, requester="other"), "rate", "res", Role.RESIDENT, {"rating": 5}
        )


def test_escalate_keeps_the_state_and_raises_the_level() -> None:
    facts = OrderFacts(State.IN_PROGRESS, escalation_level=1)
    decision = decide(facts, "escalate", "op", Role.OPERATOR, {"reason": "no answer"})
    assert decision.to_state is State.IN_PROGRESS
    assert decision.changes == {"escalation_level": 2}
    assert decision.data["level_name"] == "street"
    top = OrderFacts(State.IN_PROGRESS, escalation_level=3)
    assert decide(top, "escalate", "op", Role.OPERATOR, {"reason": "x"}).data["level"] == 3


def test_photos_are_kept_as_evidence_and_must_be_hashes() -> None:
    facts = OrderFacts(State.IN_PROGRESS, assignee="t")
    payload = {"result": "done", "photos": ["sha256:ab", "sha256:cd"]}
    decision = decide(facts, "submit", "t", Role.TECHNICIAN, payload)
    assert decision.evidence == {"photos": ["sha256:ab", "sha256:cd"]}
    assert decision.changes == {"handler": "t"}
    with pytest.raises(InvalidPayloadError, match="photos"):
        decide(facts, "submit", "t", Role.TECHNICIAN, {"result": "x", "photos": [1]})


def test_an_approved_hold_offers_no_second_decision() -> None:
    pending = allowed_actions(State.ON_HOLD, Role.SUPERVISOR)
    assert {"approve_hold", "deny_hold", "resume"} <= set(pending)
    approved = allowed_actions(State.ON_HOLD, Role.SUPERVISOR, hold_approved=True)
    assert "resume" in approved
    assert not {"approve_hold", "deny_hold"} & set(approved)
