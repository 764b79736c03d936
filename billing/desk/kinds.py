"""A ticket's request kind, changed by staff (seeds 002 and 003: only staff
tell a consultation from an intervention, or production from
communication).

``preview_kind`` is pure: the charge under the new kind's rule, before →
after, for the same billable time. ``change_kind`` sets the kind and moves
the balance at once through the ledger's correction path
(billing.ledger.charge_ticket_to with the ticket's unchanged total): more
units are drawn in consumption order, fewer go back to the lots they came
from, owed units first; the policy's overage mode applies as for time. It
is exact (the ticket's units are ``units(billable minutes, new kind)``),
reversible (changing back restores the charge) and on the statement (the
ticket's consumption moves). One unit of work with its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts.models import User
from billing.clock import utc
from billing.desk.models import Ticket
from billing.desk.services import DeskError, cost
from billing.errors import N_
from billing.ledger import services as ledger
from billing.ledger.models import Operation
from billing.ledger.rules import Charge, units
from billing.orders import overage_bills
from billing.transaction import atomic

# The ledger key of a change: "kind:<form token>".
KEY_PREFIX = "kind:"


@dataclass(frozen=True)
class KindPreview:
    """What changing ``ticket``'s kind from ``before.kind`` to ``after.kind`` does to its charge."""

    ticket_id: int
    before: Charge
    after: Charge

    @property
    def delta(self) -> int:
        return self.after.units - self.before.units


def current_kind(ticket: Ticket) -> str:
    """The kind the ticket is charged as (its own, else its policy's default)."""
    return ticket.kind or ticket.policy.default_kind or ""


def preview_kind(ticket: Ticket, kind: str) -> KindPreview:
    """Pure: the ticket's charge now and under ``kind``'s rule for the same
    billable time (nothing under a subscription, whatever the kind)."""
    if kind not in {k.slug for k in ticket.policy.kinds}:
        raise DeskError(N_("Choose a request kind of this balance."), "kind")
    after = units(ticket.policy.rule(), ticket.billable_minutes, kind)
    if ticket.subscription_id is not None:
        after = replace(after, units=0)
    return KindPreview(ticket.id, cost(ticket), after)


@dataclass(frozen=True)
class KindChange:
    ticket: Ticket
    kind_before: str
    units_before: int
    operation: Operation
    # The same form sent again: the first change stands, nothing was written.
    duplicate: bool = False


def change_kind(session: Session, ticket: Ticket, kind: str, *, by: User, expected: str, key: str,
                now: datetime) -> KindChange:
    """Staff change the ticket's request kind; its charge follows the new
    kind's rule at once (see the module). ``expected`` is the kind the
    preview was made from: if the ticket moved meanwhile, DeskError and
    nothing is written. ``key`` (the form's one-time token) makes a second
    sending of the same form a no-op. Under a ``block`` policy a change that
    costs more than the balance holds raises InsufficientBalance and writes
    nothing."""
    now = utc(now)
    if by is None or by.removed_at is not None or not by.is_staff:
        raise ledger.NotAllowed("only staff change a ticket's request kind")
    if not isinstance(key, str) or not key.strip() or len(key) > ledger.MAX_KEY_LENGTH - len(KEY_PREFIX):
        raise DeskError(N_("This form has expired: check it and send it again."), "kind")
    ledger_key = KEY_PREFIX + key
    with atomic(session):
        ledger.lock_accounts(session, [ticket.account_id])
        current = session.get_one(Ticket, ticket.id, populate_existing=True)
        done = session.scalar(select(Operation).where(Operation.key == ledger_key))
        if done is not None:
            if done.ticket_id != current.id:
                raise DeskError(N_("This form has expired: check it and send it again."), "kind")
            return KindChange(current, current_kind(current), current.units_charged, done, duplicate=True)
        if current.status == "closed":
            raise DeskError(N_("This ticket is closed: its request kind no longer changes."), "kind")
        was = current_kind(current)
        if was != expected:
            raise DeskError(N_("The request kind changed meanwhile: it is now %(kind)s. Check the preview again."),
                            "kind", kind=was)
        if kind == was:
            raise DeskError(N_("The ticket already is of this kind."), "kind")
        preview_kind(current, kind)  # the kind is one of the policy's
        units_before = current.units_charged
        current.kind = kind
        session.flush()
        operation = ledger.charge_ticket_to(session, current, current.billable_minutes, by=by, key=ledger_key,
                                            now=now)
        overage_bills.follow_correction(session, operation, now)
        current.updated_at = now
        audit.record(by, "ticket.kind", "ticket", current.id,
                     before={"kind": was, "units": units_before, "unit": current.unit},
                     after={"kind": kind, "units": current.units_charged, "unit": current.unit},
                     session=session)
    return KindChange(current, was, units_before, operation)
