"""The shared pool's loan lifecycle (人物拆借), as one table (pure: no I/O, no clock).

    REQUESTED ─approve (lender)──► APPROVED ─return (either side)─► RETURNED
        │ ─reject (lender, reason)─► REJECTED
        └ ─cancel (borrower)───────► CANCELLED

A borrowing company asks a lending company for one of its technicians or one piece of its
equipment, for one work order or, without one, for any of its orders until the loan is returned.
Only the lender decides; either side ends an approved loan. `decide_loan` checks one action and
returns the new state; it raises `IllegalLoanActionError` (the action does not apply in the loan's
state: the API answers `409` naming the allowed actions), `LoanForbiddenError` (this side may not)
or `InvalidLoanError` (a reason is missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class LoanKind(StrEnum):
    """What is lent."""

    TECHNICIAN = "technician"
    EQUIPMENT = "equipment"


class LoanState(StrEnum):
    """Where a loan is."""

    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    RETURNED = "RETURNED"
    CANCELLED = "CANCELLED"


class LoanAction(StrEnum):
    """What a company does to a loan (`POST /pool/{id}/actions`)."""

    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"
    CANCEL = "cancel"


class Side(StrEnum):
    """Which end of a loan a user stands at."""

    LENDER = "lender"
    BORROWER = "borrower"


@dataclass(frozen=True, slots=True)
class LoanRule:
    """One row of the table: `action` applies in `source`, leads to `target`, taken by `sides`."""

    action: LoanAction
    source: LoanState
    target: LoanState
    sides: frozenset[Side]
    needs_reason: bool = False


_LENDER: Final = frozenset({Side.LENDER})
_BORROWER: Final = frozenset({Side.BORROWER})
_BOTH: Final = frozenset(Side)

LOAN_RULES: Final[Mapping[LoanAction, LoanRule]] = {
    r.action: r
    for r in (
        LoanRule(LoanAction.APPROVE, LoanState.REQUESTED, LoanState.APPROVED, _LENDER),
        LoanRule(
            LoanAction.REJECT, LoanState.REQUESTED, LoanState.REJECTED, _LENDER, needs_reason=True
        ),
        LoanRule(LoanAction.RETURN, LoanState.APPROVED, LoanState.RETURNED, _BOTH),
        LoanRule(LoanAction.CANCEL, LoanState.REQUESTED, LoanState.CANCELLED, _BORROWER),
    )
}
"""The whole loan lifecycle."""

LENT_STATES: Final = frozenset({LoanState.APPROVED})
"""A loan in these states lends its technician or equipment now."""


class LoanError(Exception):
    """A loan action cannot be applied; `str()` says why in one line."""


class IllegalLoanActionError(LoanError):
    """The action does not apply in the loan's `state`; `allowed` lists what does for the caller."""

    def __init__(self, action: str, state: LoanState, allowed: Sequence[str]) -> None:
        """Name the refused `action`, the loan's `state` and the `allowed` actions."""
        self.action = action
        self.state = state
        self.allowed = list(allowed)
        choices = ", ".join(self.allowed) or "none"
        super().__init__(f"{action!r} is not allowed on a {state} loan; allowed: {choices}")


class LoanForbiddenError(LoanError):
    """This side of the loan may not take the action."""


class InvalidLoanError(LoanError):
    """A loan request or action is incomplete or names something that cannot be lent."""


def sides_of(company: str, *, lender: str, borrower: str, admin: bool = False) -> frozenset[Side]:
    """The sides a user of `company` stands at (an administrator: both)."""
    if admin:
        return _BOTH
    found = set()
    if company and company == lender:
        found.add(Side.LENDER)
    if company and company == borrower:
        found.add(Side.BORROWER)
    return frozenset(found)


def allowed_loan_actions(state: LoanState, sides: frozenset[Side]) -> list[str]:
    """The actions `sides` may take on a loan in `state`, in table order."""
    return [a.value for a, r in LOAN_RULES.items() if r.source is state and r.sides & sides]


def decide_loan(
    state: LoanState, name: str, sides: frozenset[Side], reason: str | None = None
) -> LoanState:
    """Check action `name` by a user at `sides` on a loan in `state`; return the next state."""
    try:
        action = LoanAction(name)
    except ValueError:
        raise IllegalLoanActionError(name, state, allowed_loan_actions(state, sides)) from None
    rule = LOAN_RULES[action]
    if rule.source is not state:
        raise IllegalLoanActionError(action.value, state, allowed_loan_actions(state, sides))
    if not rule.sides & sides:
        who = " or ".join(sorted(s.value for s in rule.sides))
        raise LoanForbiddenError(f"only the {who} may {action.value} a loan")
    if rule.needs_reason and not (reason or "").strip():
        raise InvalidLoanError(f"{action.value!r} requires 'reason'")
    return rule.target
