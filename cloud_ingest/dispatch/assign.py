"""Automatic assignment: which technician an order goes to (pure: no I/O; time is an argument).

A candidate is eligible for an order when, in this order of checks (the funnel a refusal
reports):

1. they are active, and not one who already rejected this order;
2. they are of the order's company, or lent to it through an approved loan (`loan_id`);
3. their team handles the order's category (a team without categories handles every one) and
   so do they (no skills: whatever their team handles);
4. their team's area covers the order's location (the location is the area or lies below it);
5. they are on duty at `at` (a shift with `starts_at <= at < ends_at`).

A borrowed technician's team covers the lender's grid, not the borrower's, and the lender's roster
is not the borrower's: the approved loan stands for both, so steps 4 and 5 do not apply to them.
Own technicians come first; a borrowed one is chosen only when no own technician is eligible.
Among the eligible the least loaded wins (orders dispatched to them and not yet submitted), then
the one whose team is closest to the order (the deepest area), then the name: the choice is
deterministic. No eligible candidate raises `NoCandidateError`, whose message names the step at
which the last candidates dropped out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cloud_ingest.auth.scope import normal_path, path_within

__all__ = ["Candidate", "NoCandidateError", "OrderNeed", "Shift", "eligible", "pick"]


@dataclass(frozen=True, slots=True)
class Shift:
    """On duty from `starts_at` (included) to `ends_at` (excluded)."""

    starts_at: datetime
    ends_at: datetime

    def covers(self, at: datetime) -> bool:
        """Whether `at` falls within the shift."""
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class Candidate:
    """A technician who might take the order, with their team, roster and current load."""

    name: str
    company: str
    team_id: int | None = None
    area: str = ""
    """The team's area (a site path; empty: the whole company)."""
    team_categories: frozenset[str] = frozenset()
    """What the team handles (empty: every category)."""
    skills: frozenset[str] = frozenset()
    """What the technician handles (empty: whatever the team handles)."""
    shifts: tuple[Shift, ...] = ()
    open_load: int = 0
    """Orders dispatched to them and not yet submitted."""
    active: bool = True
    loan_id: int | None = None
    """The approved loan that lends them to the order's company (None: the company's own)."""


@dataclass(frozen=True, slots=True)
class OrderNeed:
    """What of an order decides who may take it."""

    company: str
    category: str
    location: str


class NoCandidateError(LookupError):
    """No candidate is eligible; `str()` says at which step the last ones dropped out."""


_STEPS: Final = ("active", "company", "category", "area", "duty")
"""The funnel's steps, in the order `eligible` checks them."""


def _failed_step(  # noqa: PLR0911 - one return per step of the funnel
    candidate: Candidate, need: OrderNeed, at: datetime, excluded: frozenset[str]
) -> str | None:
    if not candidate.active or candidate.name in excluded:
        return "active"
    if candidate.loan_id is None and candidate.company != need.company:
        return "company"
    if candidate.team_categories and need.category not in candidate.team_categories:
        return "category"
    if candidate.skills and need.category not in candidate.skills:
        return "category"
    if candidate.loan_id is not None:
        return None
    if not path_within(normal_path(need.location), candidate.area):
        return "area"
    if not any(shift.covers(at) for shift in candidate.shifts):
        return "duty"
    return None


def eligible(
    candidate: Candidate, need: OrderNeed, at: datetime, excluded: Iterable[str] = ()
) -> bool:
    """Whether `candidate` may take the order at `at` (`excluded`: names that rejected it)."""
    return _failed_step(candidate, need, at, frozenset(excluded)) is None


def _rank(candidate: Candidate) -> tuple[bool, int, int, str]:
    depth = len(normal_path(candidate.area).split("/")) if normal_path(candidate.area) else 0
    return (candidate.loan_id is not None, candidate.open_load, -depth, candidate.name)


def pick(
    need: OrderNeed,
    candidates: Sequence[Candidate],
    at: datetime,
    excluded: Iterable[str] = (),
) -> Candidate:
    """The technician to dispatch the order to at `at` (see the module text).

    Raises `NoCandidateError` naming why nobody is eligible.
    """
    skip = frozenset(excluded)
    failed: dict[str, int] = dict.fromkeys(_STEPS, 0)
    chosen: list[Candidate] = []
    for candidate in candidates:
        step = _failed_step(candidate, need, at, skip)
        if step is None:
            chosen.append(candidate)
        else:
            failed[step] += 1
    if chosen:
        return min(chosen, key=_rank)
    raise NoCandidateError(_why(need, at, len(candidates), failed))


def _why(need: OrderNeed, at: datetime, total: int, failed: dict[str, int]) -> str:
    """The funnel as one sentence: how many candidates were left after each step."""
    if total == 0:
        return f"no technician is registered for company {need.company!r} or lent to it"
    left = total
    words = {
        "active": "active and not having rejected this order",
        "company": f"of company {need.company!r} or lent to it",
        "category": f"handling category {need.category!r}",
        "area": f"in a team whose area covers {need.location!r}",
        "duty": f"on duty at {at.isoformat()}",
    }
    parts = [f"{total} technician(s) considered"]
    for step in _STEPS:
        if failed[step]:
            left -= failed[step]
            parts.append(f"{left} {words[step]}")
        if left == 0:
            break
    return "no technician to dispatch to: " + ", ".join(parts)
