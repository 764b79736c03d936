"""The audit log: every admin action, who did it, to what, before → after
and when (issue 14). ``record`` adds an entry in the caller's unit of work,
so an action and its entry are written together or not at all; ``entries``
reads them back, newest first, filtered by person and by object.

Every admin action calls ``record`` inside its ``billing.transaction.atomic``
block::

    with atomic(session):
        before = {"role": user.role}
        user.role = "agent"
        audit.record(by, "staff.role", "user", user.id, before=before, after={"role": user.role})
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from billing import clock
from billing.accounts import models as account_models
from billing.audit.models import AuditEntry
from billing.transaction import in_unit_of_work

if TYPE_CHECKING:
    # billing.models imports this package while the accounts' tables are
    # still being defined (when they are imported first): User is read from
    # their module when called, not at import.
    from billing.accounts.models import User

__all__ = ["AuditEntry", "Page", "actors", "entries", "record", "subject_kinds"]

PER_PAGE = 50


def _plain(value: Any) -> Any:
    """``value`` as JSON keeps it: dates in ISO 8601, decimals and enums as text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(item) for item in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return _plain(value.value)
    return value


def record(actor: User | None, action: str, subject_kind: str, subject_id: int | None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None, *,
           session: Session | None = None) -> AuditEntry:
    """Add an audit entry to the unit of work open on ``session`` (by
    default the actor's): it is written when that unit commits, and not at
    all if it rolls back. Outside a unit of work it refuses (RuntimeError):
    an entry committed apart from its change could tell of something that
    never happened. ``actor`` None is the command line."""
    session = session or (object_session(actor) if actor is not None else None)
    if session is None:
        raise RuntimeError("audit.record needs the session of the action (pass session=...)")
    if not in_unit_of_work(session):
        raise RuntimeError("audit.record runs inside the action's unit of work (billing.transaction.atomic)")
    entry = AuditEntry(actor_id=actor.id if actor is not None else None, action=action, subject_kind=subject_kind,
                       subject_id=subject_id, before=_plain(before) if before is not None else None,
                       after=_plain(after) if after is not None else None, at=clock.now())
    session.add(entry)
    return entry


@dataclass(frozen=True)
class Page:
    """One page of the log and where it stands."""

    entries: list[AuditEntry]
    number: int
    pages: int
    total: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def entries(session: Session, *, actor_id: int | None = None, subject_kind: str | None = None,
            subject_id: int | None = None, page: int = 1, per_page: int = PER_PAGE) -> Page:
    """The log newest first, one page of it, by ``actor_id`` and/or about
    ``subject_kind`` (and ``subject_id``) when given. A page beyond the last
    gives the last."""
    query = select(AuditEntry)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if subject_kind:
        query = query.where(AuditEntry.subject_kind == subject_kind)
    if subject_id is not None:
        query = query.where(AuditEntry.subject_id == subject_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // per_page))
    number = min(max(1, page), pages)
    rows = session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                           .offset((number - 1) * per_page).limit(per_page))
    return Page(list(rows), number, pages, total)


def subject_kinds(session: Session) -> list[str]:
    """The kinds of object the log speaks of, for a filter."""
    return list(session.scalars(select(AuditEntry.subject_kind).distinct().order_by(AuditEntry.subject_kind)))


def actors(session: Session) -> list[User]:
    """Everyone the log names as having acted, for a filter."""
    user = account_models.User
    return list(session.scalars(select(user).where(user.id.in_(select(AuditEntry.actor_id)))
                                .order_by(user.name, user.id)))
