"""The provider's team (issue 14.1): staff created on the command line or
invited by an admin, their role changed, deactivated and reactivated.

Each change is one unit of work with its audit entry (billing.audit). An
invited person gets a staff row with no usable password and a mail whose
link (the password-reset machinery: signed, works once, within
TOKEN_MAX_AGE_HOURS) lets them choose one; until then nobody can log in as
them. A deactivated member's logins all end in the same unit of work, and
logging in is refused (accounts.authenticate, sessions.load_user). The team
always keeps an active admin: a change that would leave none is refused."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import audit, clock
from billing.accounts.models import STAFF_ROLES, LoginSession, User
from billing.notifications import outbox
from billing.transaction import atomic
from common.identity import sessions
from common.identity.accounts import AccountError, EmailTaken, add_user, new_user

# Stored in place of a hash until the invited person chooses a password:
# argon2 cannot read it, so no password ever matches it.
NO_PASSWORD = "!invited"


class StaffError(AccountError):
    """A team change refused; ``field`` names the form field or the action."""


@dataclass(frozen=True)
class Member:
    """A staff member as the team page lists them."""

    user: User
    last_login: datetime | None

    @property
    def status(self) -> str:
        if self.user.removed_at is not None:
            return "deactivated"
        return "invited" if invited(self.user) else "active"


def invited(user: User) -> bool:
    """Invited and not yet in: no password chosen."""
    return user.password_hash == NO_PASSWORD


def _check_role(role: str) -> None:
    if role not in STAFF_ROLES:
        raise StaffError("role", _l("Choose a role from the list."))


def _snapshot(user: User) -> dict[str, Any]:
    return {"email": user.email, "name": user.name, "role": user.role,
            "active": user.removed_at is None}


def create(session: Session, email: str, name: str, role: str, *, password: str | None, language: str = "en",
           by: User | None = None) -> User:
    """A new staff member with ``password``, or (None) invited by mail to
    choose one. ``by`` None: the command line. EmailTaken when the address is
    anybody's already; nothing is written on any refusal."""
    _check_role(role)
    with atomic(session):
        if password is None:
            user = new_user(email, name, "x" * 10, language, is_staff=True, role=role, email_verified_at=clock.now())
            user.password_hash = NO_PASSWORD
        else:
            user = new_user(email, name, password, language, is_staff=True, role=role, email_verified_at=clock.now())
        add_user(session, user)
        audit.record(by, "staff.invite" if password is None else "staff.create", "user", user.id,
                     after=_snapshot(user), session=session)
        if password is None:
            queue_link(session, user, by)
    return user


def queue_link(session: Session, user: User, by: User | None) -> list[str]:
    """Queue the mail whose link lets an invited member choose a password;
    the keys queued (the caller may deliver them at once)."""
    with atomic(session):
        payload = {"invite": True, "by": by.name if by is not None else None}
        return outbox.enqueue(session, "reset_password", f"staff-invite:{user.id}:{uuid.uuid4().hex}", [user],
                              now=clock.now(), payload=payload)


def resend(session: Session, user: User, *, by: User) -> list[str]:
    """The invitation again, for someone who has not chosen a password yet."""
    if not invited(user) or user.removed_at is not None:
        raise StaffError("user", _l("%(name)s has already chosen a password.", name=user.name))
    with atomic(session):
        keys = queue_link(session, user, by)
        audit.record(by, "staff.resend", "user", user.id, after={"email": user.email}, session=session)
    return keys


def _lock_admins(session: Session) -> list[int]:
    """The ids of the active admins, locked (PostgreSQL) until the unit ends,
    so that two admins demoting each other at once cannot leave none."""
    return list(session.scalars(select(User.id).where(User.is_staff.is_(True), User.role == "admin",
                                                       User.removed_at.is_(None))
                                .order_by(User.id).with_for_update()))


def _keeps_an_admin(session: Session, user: User) -> None:
    if user.role == "admin" and user.removed_at is None and _lock_admins(session) == [user.id]:
        raise StaffError("user", _l("%(name)s is the last active administrator: make someone else an "
                                    "administrator first.", name=user.name))


def change_role(session: Session, user: User, role: str, *, by: User) -> bool:
    """Give ``user`` the ``role``; False when they had it already (nothing written)."""
    _check_role(role)
    with atomic(session):
        if user.role == role:
            return False
        if role != "admin":
            _keeps_an_admin(session, user)
        before = user.role
        user.role = role
        audit.record(by, "staff.role", "user", user.id, before={"role": before}, after={"role": role},
                     session=session)
    return True


def deactivate(session: Session, user: User, *, by: User, now: datetime | None = None) -> bool:
    """End every login of ``user`` and refuse the next ones; False when
    they were deactivated already."""
    now = now or clock.now()
    with atomic(session):
        if user.removed_at is not None:
            return False
        _keeps_an_admin(session, user)
        user.removed_at = now
        ended = sessions.end_all(session, user, now=now)
        audit.record(by, "staff.deactivate", "user", user.id, before={"active": True},
                     after={"active": False, "logins_ended": ended}, session=session)
    return True


def reactivate(session: Session, user: User, *, by: User) -> bool:
    """Let ``user`` log in again, with the role they had; False when active already."""
    with atomic(session):
        if user.removed_at is None:
            return False
        user.removed_at = None
        audit.record(by, "staff.reactivate", "user", user.id, before={"active": False}, after={"active": True},
                     session=session)
    return True


def team(session: Session) -> list[Member]:
    """Every staff member, active first, then by name, with their last login."""
    last = (select(LoginSession.user_id, func.max(LoginSession.created_at).label("at"))
            .group_by(LoginSession.user_id).subquery())
    rows = session.execute(select(User, last.c.at).outerjoin(last, last.c.user_id == User.id)
                           .where(User.is_staff.is_(True))
                           .order_by(User.removed_at.is_not(None), User.name, User.id)).all()
    return [Member(user, clock.as_utc(at) if at is not None else None) for user, at in rows]


def get(session: Session, user_id: int) -> User | None:
    """A staff member by id, None for anybody else."""
    user = session.get(User, user_id)
    return user if user is not None and user.is_staff else None


__all__ = ["NO_PASSWORD", "EmailTaken", "Member", "StaffError", "change_role", "create", "deactivate", "get",
           "invited", "queue_link", "reactivate", "resend", "team"]
