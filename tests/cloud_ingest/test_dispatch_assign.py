"""The pure cores of dispatch, as data: who automatic assignment picks, and the loan lifecycle."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud_ingest.dispatch.assign import (
    Candidate,
    NoCandidateError,
    OrderNeed,
    Shift,
    eligible,
    pick,
)
from cloud_ingest.dispatch.pool import (
    IllegalLoanActionError,
    InvalidLoanError,
    LoanForbiddenError,
    LoanState,
    Side,
    allowed_loan_actions,
    decide_loan,
    sides_of,
)

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
DAY = Shift(NOW - timedelta(hours=2), NOW + timedelta(hours=6))
NIGHT = Shift(NOW + timedelta(hours=6), NOW + timedelta(hours=14))
WATER = OrderNeed(company="A", category="water", location="d1/s1/c1/g1/b3")
BASE = Candidate(
    name="wang",
    company="A",
    team_id=1,
    area="d1/s1/c1/g1",
    team_categories=frozenset({"water", "electric"}),
    shifts=(DAY,),
)


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"active": False}, False),
        ({"company": "B"}, False),  # another company's, not lent
        ({"company": "B", "loan_id": 7}, True),  # lent by an approved loan
        ({"team_categories": frozenset({"fire"})}, False),
        ({"team_categories": frozenset()}, True),  # a team without categories handles all
        ({"skills": frozenset({"electric"})}, False),
        ({"skills": frozenset({"water"})}, True),
        ({"area": "d1/s1/c1/g2"}, False),
        ({"area": "d1/s1/c1/g"}, False),  # whole segments, not text prefixes
        ({"area": "d1/s1"}, True),  # a wider team covers it too
        ({"area": ""}, True),  # the whole company
        ({"shifts": ()}, False),  # no roster: not on duty
        ({"shifts": (NIGHT,)}, False),
        ({"shifts": (Shift(NOW, NOW + timedelta(hours=1)),)}, True),  # starts now: on duty
        ({"shifts": (Shift(NOW - timedelta(hours=1), NOW),)}, False),  # ended now: off duty
        ({"shifts": (), "area": "x", "company": "B", "loan_id": 3}, True),  # the loan stands
    ],
)
def test_who_is_eligible(change: dict[str, object], ok: bool) -> None:
    candidate = replace(BASE, **change)  # type: ignore[arg-type]
    assert eligible(candidate, WATER, NOW) is ok


def test_someone_who_rejected_the_order_is_not_chosen_again() -> None:
    assert not eligible(BASE, WATER, NOW, excluded=["wang"])
    assert eligible(BASE, WATER, NOW, excluded=["li"])


@pytest.mark.parametrize(
    ("candidates", "chosen"),
    [
        # the least open load wins
        ([("wang", 2, "d1/s1/c1/g1", None), ("li", 1, "d1/s1/c1/g1", None)], "li"),
        # equal load: the team closest to the order (the deepest area)
        ([("wang", 1, "d1/s1", None), ("li", 1, "d1/s1/c1/g1", None)], "li"),
        ([("li", 1, "", None), ("wang", 1, "d1/s1/c1", None)], "wang"),
        # equal load and area: the name, whatever the order given
        ([("zhao", 0, "d1", None), ("chen", 0, "d1", None)], "chen"),
        ([("chen", 0, "d1", None), ("zhao", 0, "d1", None)], "chen"),
        # own technicians before borrowed ones, even busier ones
        ([("lent", 0, "x", 9), ("busy", 5, "d1", None)], "busy"),
        # borrowed when no own technician is eligible
        ([("lent", 0, "x", 9), ("off", 0, "d2", None)], "lent"),
        ([("lent-2", 3, "x", 9), ("lent-1", 1, "x", 8)], "lent-1"),
    ],
)
def test_the_choice_is_least_loaded_then_closest_then_by_name(
    candidates: list[tuple[str, int, str, int | None]], chosen: str
) -> None:
    found = [
        replace(
            BASE,
            name=name,
            open_load=load,
            area=area,
            loan_id=loan,
            company="B" if loan else "A",
        )
        for name, load, area, loan in candidates
    ]
    assert pick(WATER, found, NOW).name == chosen


@pytest.mark.parametrize(
    ("candidates", "says"),
    [
        ([], "no technician is registered for company 'A'"),
        ([replace(BASE, active=False)], "0 active"),
        ([replace(BASE, company="B")], "0 of company 'A' or lent to it"),
        ([replace(BASE, skills=frozenset({"gas"}))], "0 handling category 'water'"),
        ([replace(BASE, area="d1/s2")], "0 in a team whose area covers 'd1/s1/c1/g1/b3'"),
        (
            [replace(BASE, shifts=(NIGHT,)), replace(BASE, name="li", area="d9")],
            (
                "2 technician(s) considered, 1 in a team whose area covers 'd1/s1/c1/g1/b3', "
                "0 on duty at 2026-12-08T02:00:00+00:00"
            ),
        ),
    ],
)
def test_nobody_eligible_says_why(candidates: list[Candidate], says: str) -> None:
    with pytest.raises(NoCandidateError, match="no technician") as caught:
        pick(WATER, candidates, NOW)
    assert says in str(caught.value)


# --- the loan lifecycle ---------------------------------------------------------------------------

LENDER = frozenset({Side.LENDER})
BORROWER = frozenset({Side.BORROWER})
BOTH = frozenset(Side)


@pytest.mark.parametrize(
    ("state", "action", "sides", "target"),
    [
        (LoanState.REQUESTED, "approve", LENDER, LoanState.APPROVED),
        (LoanState.REQUESTED, "reject", LENDER, LoanState.REJECTED),
        (LoanState.REQUESTED, "cancel", BORROWER, LoanState.CANCELLED),
        (LoanState.APPROVED, "return", LENDER, LoanState.RETURNED),
        (LoanState.APPROVED, "return", BORROWER, LoanState.RETURNED),
        (LoanState.REQUESTED, "approve", BOTH, LoanState.APPROVED),  # an administrator
    ],
)
def test_the_loan_lifecycle(
    state: LoanState, action: str, sides: frozenset[Side], target: LoanState
) -> None:
    assert decide_loan(state, action, sides, reason="no pump of our own") is target


@pytest.mark.parametrize(
    ("state", "action", "sides", "error"),
    [
        (LoanState.REQUESTED, "approve", BORROWER, LoanForbiddenError),  # only the lender decides
        (LoanState.REQUESTED, "reject", BORROWER, LoanForbiddenError),
        (LoanState.REQUESTED, "cancel", LENDER, LoanForbiddenError),
        (LoanState.REQUESTED, "return", BOTH, IllegalLoanActionError),  # not lent yet
        (LoanState.APPROVED, "approve", LENDER, IllegalLoanActionError),
        (LoanState.REJECTED, "approve", LENDER, IllegalLoanActionError),
        (LoanState.RETURNED, "return", BOTH, IllegalLoanActionError),
        (LoanState.CANCELLED, "approve", LENDER, IllegalLoanActionError),
        (LoanState.REQUESTED, "steal", BOTH, IllegalLoanActionError),
        (LoanState.REQUESTED, "approve", frozenset(), LoanForbiddenError),  # a third company
    ],
)
def test_illegal_loan_actions(
    state: LoanState, action: str, sides: frozenset[Side], error: type[Exception]
) -> None:
    with pytest.raises(error):
        decide_loan(state, action, sides, reason="r")


def test_a_rejection_needs_a_reason_and_a_refusal_names_the_allowed_actions() -> None:
    with pytest.raises(InvalidLoanError, match="reason"):
        decide_loan(LoanState.REQUESTED, "reject", LENDER, reason="  ")
    with pytest.raises(IllegalLoanActionError) as caught:
        decide_loan(LoanState.APPROVED, "approve", LENDER)
    assert (caught.value.state, caught.value.allowed) == (LoanState.APPROVED, ["return"])
    assert allowed_loan_actions(LoanState.REQUESTED, LENDER) == ["approve", "reject"]
    assert allowed_loan_actions(LoanState.REQUESTED, BORROWER) == ["cancel"]
    assert allowed_loan_actions(LoanState.RETURNED, BOTH) == []


def test_sides_of_a_user() -> None:
    assert sides_of("A", lender="A", borrower="B") == LENDER
    assert sides_of("B", lender="A", borrower="B") == BORROWER
    assert sides_of("C", lender="A", borrower="B") == frozenset()
    assert sides_of("", lender="A", borrower="B") == frozenset()  # an area officer
    assert sides_of("", lender="A", borrower="B", admin=True) == BOTH
