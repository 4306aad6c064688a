"""The ticket state machine: the transition table is data, everything not in it is refused.

States: new, triaged, waiting_customer, in_progress, rma, resolved, closed.

Allowed transitions (from → to):

    new               → triaged
    triaged           → in_progress, waiting_customer
    waiting_customer  → in_progress, resolved          (the customer answered / confirmed a fix)
    in_progress       → waiting_customer, rma, resolved
    rma               → in_progress, resolved          (unit back for more work / repaired or
                                                         replaced)
    resolved          → closed, in_progress            (in_progress = reopen)
    closed            → in_progress, triaged           (reopen; triaged when it needs a new
                                                         look first)

The main path is new → triaged → in_progress ↔ waiting_customer → rma → resolved → closed.
Anything else (for example new → resolved, or closed → resolved) raises InvalidTransition
naming the targets that are allowed from the current state. A transition to the same state is
not a transition and is refused too.

Side effects, applied by `TicketService.transition`:
* → resolved: `resolved_at` = now (the note becomes the resolution text when given).
* → closed: `closed_at` = now.
* reopen (resolved/closed → in_progress/triaged): `resolved_at` and `closed_at` are cleared
  and the SLA clock restarts (now + ticket_sla_hours[priority]).
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

from crm_core.errors import InvalidTransition


class TicketStatus(StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    WAITING_CUSTOMER = "waiting_customer"
    IN_PROGRESS = "in_progress"
    RMA = "rma"
    RESOLVED = "resolved"
    CLOSED = "closed"


S = TicketStatus

TRANSITIONS: MappingProxyType[TicketStatus, frozenset[TicketStatus]] = MappingProxyType(
    {
        S.NEW: frozenset({S.TRIAGED}),
        S.TRIAGED: frozenset({S.IN_PROGRESS, S.WAITING_CUSTOMER}),
        S.WAITING_CUSTOMER: frozenset({S.IN_PROGRESS, S.RESOLVED}),
        S.IN_PROGRESS: frozenset({S.WAITING_CUSTOMER, S.RMA, S.RESOLVED}),
        S.RMA: frozenset({S.IN_PROGRESS, S.RESOLVED}),
        S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
        S.CLOSED: frozenset({S.IN_PROGRESS, S.TRIAGED}),
    }
)

# Ticket states that no longer need work (excluded from "open" and "overdue").
DONE_STATES: frozenset[TicketStatus] = frozenset({S.RESOLVED, S.CLOSED})
OPEN_STATES: frozenset[TicketStatus] = frozenset(S) - DONE_STATES
# Order of states for display (allowed-target lists are shown in this order).
_ORDER = list(S)


def allowed_targets(current: str) -> list[TicketStatus]:
    """States reachable from `current` in one step, in display order."""
    targets = TRANSITIONS.get(_as_status(current), frozenset())
    return [s for s in _ORDER if s in targets]


def is_reopen(current: str, target: str) -> bool:
    """True when a done ticket (resolved/closed) goes back to work."""
    return _as_status(current) in DONE_STATES and _as_status(target) in OPEN_STATES


def check_transition(current: str, target: str) -> TicketStatus:
    """Return `target` as a TicketStatus when current → target is allowed, else raise."""
    if target not in S.__members__.values():
        raise InvalidTransition(
            f"Unknown ticket status {target!r}; known: {', '.join(s.value for s in S)}."
        )
    to = S(target)
    if to not in TRANSITIONS.get(_as_status(current), frozenset()):
        allowed = ", ".join(s.value for s in allowed_targets(current)) or "none"
        raise InvalidTransition(
            f"A ticket cannot go from {current} to {to.value}; allowed from {current}: {allowed}."
        )
    return to


def _as_status(value: str) -> TicketStatus:
    try:
        return S(value)
    except ValueError:
        raise InvalidTransition(f"Unknown ticket status {value!r}.") from None
