"""The work-order state machine, as one declarative table (pure: no I/O, no clock).

    NEW ─accept─► ACCEPTED ─dispatch─► DISPATCHED ─start─► IN_PROGRESS ─submit─► AWAITING_VERIFICATION
                     ▲                    │                  ▲     │ hold (reason)    │ verify
                     └──reject (reason)───┘                  │     ▼                  ▼ (≠ handler)
                                  deny_hold (reason), resume ├── ON_HOLD (pending)   CLOSED
                                                             │     │ approve_hold
                                           resume (time left)└── ON_HOLD (approved: clock stopped)
    AWAITING_VERIFICATION ─rework (reason)─► REWORK ─dispatch─► DISPATCHED
    CLOSED ─rate─► RATED (rating ≤ 2: REWORK) ─follow_up─► FOLLOWED_UP (also from CLOSED)
    CLOSED / RATED / FOLLOWED_UP ─reopen (reason)─► REOPENED ─rework or dispatch─► ...
    cancel (reason) from any open state ─► CANCELLED
    escalate (上报, reason) keeps the state and raises the level (grid → community → street →
    district, `escalation.ESCALATION_LEVELS`); comment keeps the state; both record an event.

**A hold** (延期) is asked for and approved. A technician's `hold` moves the order to ON_HOLD
*pending*: the handling stage's clock keeps running (its due time stays, and a breach escalates as
ever). A supervisor's `approve_hold` stops the clock (`SlaClock.PAUSE`: the order keeps the due
time it had and the instant of approval, and has no due time while held); `deny_hold` (reason)
returns it to IN_PROGRESS with the due time it had all along; `resume` returns it to IN_PROGRESS,
after an approved hold with the handling time that was left at the approval (`SlaClock.RESUME`),
and before one (the request withdrawn) with the due time unchanged. A hold is approved or denied
once: both are refused (`IllegalActionError`) once it is approved.

`TRANSITIONS` maps each action a person may take to the states it applies in, the state it leads
to, the payload fields it requires and the roles that may take it. `decide` checks one action
against an order and returns what changes; it raises `IllegalActionError` (the action does not apply
in the order's state: the API answers `409` naming the allowed actions), `ActionForbiddenError` (this
person may not, e.g. the handler verifying their own work) or `InvalidPayloadError` (a required field is
missing or out of range). The system's own events (`open`, `alarm`, `auto_verify`, and the SLA
scheduler's `breach`, `breaches.py`) are not in the table: people cannot take them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from cloud_ingest.auth.models import Role
from cloud_ingest.work_orders.escalation import ESCALATION_LEVELS


class State(StrEnum):
    """Where a work order is in its loop."""

    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    DISPATCHED = "DISPATCHED"
    IN_PROGRESS = "IN_PROGRESS"
    ON_HOLD = "ON_HOLD"
    AWAITING_VERIFICATION = "AWAITING_VERIFICATION"
    REWORK = "REWORK"
    REOPENED = "REOPENED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    RATED = "RATED"
    FOLLOWED_UP = "FOLLOWED_UP"


class Action(StrEnum):
    """What a person does to a work order (`POST /work-orders/{id}/actions`)."""

    ACCEPT = "accept"
    DISPATCH = "dispatch"
    REJECT = "reject"
    CONFIRM = "confirm"
    START = "start"
    HOLD = "hold"
    APPROVE_HOLD = "approve_hold"
    DENY_HOLD = "deny_hold"
    RESUME = "resume"
    SUBMIT = "submit"
    VERIFY = "verify"
    REWORK = "rework"
    REOPEN = "reopen"
    CANCEL = "cancel"
    RATE = "rate"
    FOLLOW_UP = "follow_up"
    ESCALATE = "escalate"
    COMMENT = "comment"


OPEN_ACTION: Final = "open"
"""The first event of every order (from no state to NEW)."""
ALARM_ACTION: Final = "alarm"
"""An alarm change attached as evidence (the state stays)."""
AUTO_VERIFY_ACTION: Final = "auto_verify"
"""The sensor's RESOLVED closes an order of a category that opted into auto-verification."""
BREACH_ACTION: Final = "breach"
"""The SLA scheduler found the running stage overdue and escalated the order (the state stays)."""


class SlaClock(StrEnum):
    """What an action does to the running SLA stage's due time (`Decision.sla_clock`)."""

    RESTART = "restart"
    """A change of state starts the new state's stage afresh (no change of state: the due time
    stays)."""
    KEEP = "keep"
    """The due time stays, whatever the state (a hold asked for, denied or withdrawn)."""
    PAUSE = "pause"
    """The clock stops: no due time until resumed (an approved hold)."""
    RESUME = "resume"
    """The clock runs again with the time that was left when it stopped."""


OPEN_STATES: Final = frozenset(
    {
        State.NEW,
        State.ACCEPTED,
        State.DISPATCHED,
        State.IN_PROGRESS,
        State.ON_HOLD,
        State.AWAITING_VERIFICATION,
        State.REWORK,
        State.REOPENED,
    }
)
"""States in which work is still to be done (alarms attach to orders in these states)."""
DONE_STATES: Final = frozenset({State.CLOSED, State.RATED, State.FOLLOWED_UP})
"""States of an order whose work was verified."""

RATING_MIN: Final = 1
RATING_MAX: Final = 5
BAD_RATING_MAX: Final = 2
"""A rating of this or less sends the order back to rework (and counts toward the rework rate)."""

_STAFF: Final = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})
_FIELD: Final = frozenset({Role.TECHNICIAN, Role.SUPERVISOR, Role.ADMIN})
_EVERYONE: Final = frozenset(Role)
_APPROVERS: Final = frozenset({Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: `action` applies in `sources` and leads to `target`.

    `target` None keeps the state (an event is still recorded). `required` names payload fields
    that must be given (non-blank); `roles` may take the action.
    """

    action: Action
    sources: frozenset[State]
    target: State | None
    required: tuple[str, ...] = ()
    roles: frozenset[Role] = _STAFF


TRANSITIONS: Final[Mapping[Action, Transition]] = {
    t.action: t
    for t in (
        Transition(Action.ACCEPT, frozenset({State.NEW}), State.ACCEPTED),
        Transition(
            Action.DISPATCH,
            frozenset({State.ACCEPTED, State.REWORK, State.REOPENED}),
            State.DISPATCHED,
            ("assignee",),
        ),
        Transition(
            Action.REJECT, frozenset({State.DISPATCHED}), State.ACCEPTED, ("reason",), _FIELD
        ),
        Transition(Action.CONFIRM, frozenset({State.DISPATCHED}), None, (), _FIELD),
        Transition(Action.START, frozenset({State.DISPATCHED}), State.IN_PROGRESS, (), _FIELD),
        Transition(Action.HOLD, frozenset({State.IN_PROGRESS}), State.ON_HOLD, ("reason",), _FIELD),
        Transition(Action.APPROVE_HOLD, frozenset({State.ON_HOLD}), None, (), _APPROVERS),
        Transition(
            Action.DENY_HOLD, frozenset({State.ON_HOLD}), State.IN_PROGRESS, ("reason",), _APPROVERS
        ),
        Transition(Action.RESUME, frozenset({State.ON_HOLD}), State.IN_PROGRESS, (), _FIELD),
        Transition(
            Action.SUBMIT,
            frozenset({State.IN_PROGRESS}),
            State.AWAITING_VERIFICATION,
            ("result",),
            _FIELD,
        ),
        Transition(Action.VERIFY, frozenset({State.AWAITING_VERIFICATION}), State.CLOSED),
        Transition(
            Action.REWORK,
            frozenset({State.AWAITING_VERIFICATION, State.REOPENED}),
            State.REWORK,
            ("reason",),
        ),
        Transition(Action.REOPEN, DONE_STATES, State.REOPENED, ("reason",)),
        Transition(Action.CANCEL, OPEN_STATES, State.CANCELLED, ("reason",)),
        Transition(
            Action.RATE,
            frozenset({State.CLOSED}),
            State.RATED,
            ("rating",),
            _STAFF | {Role.RESIDENT},
        ),
        Transition(Action.FOLLOW_UP, frozenset({State.CLOSED, State.RATED}), State.FOLLOWED_UP),
        Transition(Action.ESCALATE, OPEN_STATES, None, ("reason",), _STAFF | {Role.TECHNICIAN}),
        Transition(Action.COMMENT, frozenset(State), None, ("comment",), _EVERYONE),
    )
}
"""The whole state machine for people's actions."""

_TECHNICIAN_OWN: Final = frozenset(
    {Action.REJECT, Action.CONFIRM, Action.START, Action.HOLD, Action.RESUME, Action.SUBMIT}
)
"""Actions a technician may take only on an order dispatched to them."""
_TIMESTAMPS: Final = {
    Action.ACCEPT: "accepted_at",
    Action.DISPATCH: "dispatched_at",
    Action.START: "started_at",
    Action.SUBMIT: "submitted_at",
    Action.VERIFY: "closed_at",
    Action.APPROVE_HOLD: "hold_approved_at",
}
"""The order's column set to the time of the action."""


class ActionError(Exception):
    """An action cannot be applied; `str()` says why in one line."""


class IllegalActionError(ActionError):
    """The action does not apply in the order's `state`; `allowed` lists what does (for the role)."""

    def __init__(self, action: str, state: State, allowed: Sequence[str]) -> None:
        """Name the refused `action`, the current `state` and the `allowed` actions."""
        self.action = action
        self.state = state
        self.allowed = list(allowed)
        choices = ", ".join(self.allowed) or "none"
        super().__init__(f"{action!r} is not allowed in state {state}; allowed: {choices}")


class ActionForbiddenError(ActionError):
    """This person may not take the action on this order (role, not their order, own work)."""


class InvalidPayloadError(ActionError):
    """A required field is missing, blank or out of range."""


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What `decide` needs to know of an order besides its state."""

    state: State
    assignee: str | None = None
    handler: str | None = None
    requester: str | None = None
    escalation_level: int = 0
    hold_approved: bool = False
    """The order is ON_HOLD and a supervisor approved the hold (its SLA clock stands still)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What an allowed action does: the new state, the event's fields and the order's changes."""

    action: Action
    from_state: State
    to_state: State
    reason: str | None
    evidence: dict[str, object]
    data: dict[str, object]
    changes: dict[str, object] = field(default_factory=dict)
    """Columns of the order to set (besides `state`); a timestamp column maps to `None` here and
    is filled with the event's time by the caller (see `timestamp_column`)."""
    counts_rework: bool = False
    timestamp_column: str | None = None
    sla_clock: SlaClock = SlaClock.RESTART
    """What happens to the order's due time (see `SlaClock`)."""


_DECIDED_ONCE: Final = frozenset({Action.APPROVE_HOLD, Action.DENY_HOLD})
"""A hold is approved or denied once."""


def allowed_actions(state: State, role: Role, *, hold_approved: bool = False) -> list[str]:
    """The actions `role` may take in `state`, in table order (a hold is decided once)."""
    return [
        a.value
        for a, t in TRANSITIONS.items()
        if state in t.sources and role in t.roles and not (hold_approved and a in _DECIDED_ONCE)
    ]


def parse_action(name: str, state: State, role: Role) -> Action:
    """The `Action` called `name`; an unknown name is an `IllegalActionError` like a misplaced one."""
    try:
        return Action(name)
    except ValueError:
        raise IllegalActionError(name, state, allowed_actions(state, role)) from None


def _text(payload: Mapping[str, object], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPayloadError(f"{name!r} must be text")
    stripped = value.strip()
    return stripped or None


def _photos(payload: Mapping[str, object]) -> list[str]:
    value = payload.get("photos") or []
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p for p in value):
        raise InvalidPayloadError("'photos' must be a list of photo hashes")
    return [str(p) for p in value]


def _rating(payload: Mapping[str, object]) -> int:
    value = payload.get("rating")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidPayloadError("'rating' must be a whole number from 1 to 5")
    if not RATING_MIN <= value <= RATING_MAX:
        raise InvalidPayloadError(
            f"'rating' must be from {RATING_MIN} to {RATING_MAX}, not {value}"
        )
    return value


def _check_required(transition: Transition, payload: Mapping[str, object]) -> None:
    for name in transition.required:
        if name == "rating":
            _rating(payload)
        elif _text(payload, name) is None:
            raise InvalidPayloadError(f"{transition.action.value!r} requires {name!r}")


def _check_person(action: Action, order: OrderFacts, actor: str, role: Role) -> None:
    if role is Role.TECHNICIAN and action in _TECHNICIAN_OWN and order.assignee != actor:
        raise ActionForbiddenError(f"only the assigned technician may {action.value} this order")
    if action is Action.VERIFY and order.handler is not None and order.handler == actor:
        raise ActionForbiddenError(f"the verifier must not be the handler ({actor!r})")
    if role is Role.RESIDENT and order.requester != actor:
        raise ActionForbiddenError(f"a resident may {action.value} only their own request")


def _effects(  # noqa: PLR0917 - private helper of `decide`
    action: Action,
    target: State,
    order: OrderFacts,
    actor: str,
    payload: Mapping[str, object],
    data: dict[str, object],
) -> tuple[State, dict[str, object], bool]:
    """The target state, the order's column changes and whether it counts as rework."""
    changes: dict[str, object] = {}
    counts_rework = action is Action.REWORK
    if action is Action.DISPATCH:
        changes["assignee"] = data["assignee"]
    elif action is Action.SUBMIT:
        changes["handler"] = actor
    elif action is Action.VERIFY:
        changes["verifier"] = actor
    elif action is Action.RATE:
        rating = _rating(payload)
        changes["rating"] = data["rating"] = rating
        if rating <= BAD_RATING_MAX:
            target, counts_rework = State.REWORK, True
    elif action is Action.ESCALATE:
        level = min(order.escalation_level + 1, len(ESCALATION_LEVELS) - 1)
        changes["escalation_level"] = data["level"] = level
        data["level_name"] = ESCALATION_LEVELS[level]
    return target, changes, counts_rework


_HOLD_COLUMNS: Final = ("hold_approved_at", "hold_due_at")
"""The order's columns of an approved hold: when it was approved, and the due time it stopped."""


def _hold_clock(
    action: Action, target: State, order: OrderFacts, role: Role, changes: dict[str, object]
) -> SlaClock:
    """What `action` (leading to `target`) does to the SLA clock, as the hold rules say.

    Leaving ON_HOLD (deny, resume, cancel) clears the hold columns. Raises `IllegalActionError`
    for approving or denying a hold that is already approved.
    """
    if action in _DECIDED_ONCE and order.hold_approved:
        allowed = allowed_actions(order.state, role, hold_approved=True)
        raise IllegalActionError(action.value, order.state, allowed)
    if action is Action.HOLD:
        changes.update(dict.fromkeys(_HOLD_COLUMNS))  # asked for, not approved yet
        return SlaClock.KEEP
    if action is Action.APPROVE_HOLD:
        return SlaClock.PAUSE  # the caller sets `hold_approved_at` and `hold_due_at`
    if order.state is not State.ON_HOLD or target is State.ON_HOLD:
        return SlaClock.RESTART
    changes.update(dict.fromkeys(_HOLD_COLUMNS))
    if action is Action.RESUME and order.hold_approved:
        return SlaClock.RESUME
    if action in {Action.RESUME, Action.DENY_HOLD}:
        return SlaClock.KEEP
    return SlaClock.RESTART


def decide(
    order: OrderFacts, name: str, actor: str, role: Role, payload: Mapping[str, object]
) -> Decision:
    """Check action `name` by `actor` (with `role`) on `order`; return what it does.

    `payload` may hold `reason`, `assignee`, `result`, `comment`, `rating` and `photos` (a list
    of photo hashes, kept as evidence); fields an action does not use are kept in the event's data.
    """
    action = parse_action(name, order.state, role)
    transition = TRANSITIONS[action]
    if order.state not in transition.sources:
        raise IllegalActionError(action.value, order.state, allowed_actions(order.state, role))
    if role not in transition.roles:
        names = ", ".join(sorted(r.value for r in transition.roles))
        raise ActionForbiddenError(f"role {role.value!r} may not {action.value}; allowed: {names}")
    _check_required(transition, payload)
    _check_person(action, order, actor, role)
    data: dict[str, object] = {}
    for name_ in ("result", "comment", "assignee"):
        text = _text(payload, name_)
        if text is not None:
            data[name_] = text
    target, changes, counts_rework = _effects(
        action, transition.target or order.state, order, actor, payload, data
    )
    sla_clock = _hold_clock(action, target, order, role, changes)
    photos = _photos(payload)
    return Decision(
        action=action,
        from_state=order.state,
        to_state=target,
        reason=_text(payload, "reason"),
        evidence={"photos": photos} if photos else {},
        data=data,
        changes=changes,
        counts_rework=counts_rework,
        timestamp_column=_TIMESTAMPS.get(action),
        sla_clock=sla_clock,
    )


def auto_verifiable(state: State) -> bool:
    """Whether a sensor's RESOLVED may close an order in `state` (auto-verifying categories)."""
    return state in OPEN_STATES
