"""Logins that the server can end (billing.accounts.models.LoginSession).

Flask's session is a signed cookie: logging out only asks the browser to
forget it, and a copy of the cookie (or of the remember-me cookie) would go
on working for as long as its signature does. Here every login is a row;
what Flask-Login keeps as "the user id", in the session and in the
remember-me cookie, is that row's random token. A request is logged in only
while its row has not ended: logging out ends it, a new password or "log
out everywhere" ends every row of the user.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app, g, request, session
from flask_login import login_user, logout_user
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from billing import clock
from billing.accounts.models import LoginSession, User
from billing.transaction import atomic, in_unit_of_work
from common.extensions import db

# last_seen_at is written at most this often, not on every request.
TOUCH_EVERY = timedelta(minutes=5)



def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(db_session: Session, user: User, *, user_agent: str = "", address: str = "",
          now: datetime | None = None) -> str:
    """A new login of ``user``; returns its token (the only copy)."""
    now = now or clock.now()
    token = secrets.token_urlsafe(32)
    with atomic(db_session):
        db_session.add(LoginSession(user_id=user.id, token_hash=_hash(token), created_at=now, last_seen_at=now,
                                    user_agent=(user_agent or "")[:300], address=(address or "")[:64]))
    return token


def find(db_session: Session, token: str, *, max_idle: timedelta, now: datetime | None = None) -> LoginSession | None:
    """The login ``token`` opens, if it has not ended nor lain unused longer than ``max_idle``."""
    now = now or clock.now()
    row = db_session.scalar(select(LoginSession).where(LoginSession.token_hash == _hash(token),
                                                       LoginSession.ended_at.is_(None)))
    if row is None or row.last_seen_at < now - max_idle:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY and not in_unit_of_work(db_session) and not (
            db_session.new or db_session.dirty or db_session.deleted):
        # Only on a clean session: this commit must not save anything half done.
        with atomic(db_session):
            row.last_seen_at = now
    return row


def end(db_session: Session, token: str | None, *, now: datetime | None = None) -> None:
    if not token:
        return
    with atomic(db_session):
        db_session.execute(update(LoginSession)
                           .where(LoginSession.token_hash == _hash(token), LoginSession.ended_at.is_(None))
                           .values(ended_at=now or clock.now()))


def end_all(db_session: Session, user: User, *, now: datetime | None = None) -> int:
    """End every login of ``user`` (in the caller's unit of work, if one is
    open); returns how many were running."""
    with atomic(db_session):
        ended = cast(CursorResult[Any], db_session.execute(
            update(LoginSession).where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
            .values(ended_at=now or clock.now())))
        return ended.rowcount


def running(db_session: Session, user: User, *, max_idle: timedelta, now: datetime | None = None) -> list[LoginSession]:
    """The user's logins still open, most recently seen first."""
    now = now or clock.now()
    return list(db_session.scalars(select(LoginSession).where(
        LoginSession.user_id == user.id, LoginSession.ended_at.is_(None),
        LoginSession.last_seen_at >= now - max_idle,
    ).order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())))


def max_idle() -> timedelta:
    """A login unused for as long as the remember-me cookie lasts is over."""
    return current_app.config["REMEMBER_COOKIE_DURATION"]


# ------------------------------------------------------------ in a request

def load_user(token: str) -> User | None:
    """Flask-Login's user_loader: the user of a running login, unless an
    owner removed them from the pool since."""
    row = find(db.session(), token, max_idle=max_idle())
    if row is None or row.user.removed_at is not None:
        return None
    user = row.user
    user.login_token = token
    g.login_session_id = row.id
    return user


def log_in(user: User, *, remember: bool = False) -> None:
    """Log ``user`` in this browser as a new login. The CSRF secret is drawn
    anew: one read by someone before the login is worth nothing after it."""
    user.login_token = start(db.session(), user, user_agent=request.user_agent.string,
                             address=request.remote_addr or "")
    login_user(user, remember=remember)
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    session.pop(field, None)
    g.pop(field, None)


def log_out(user: User) -> None:
    """End this browser's login, and its remember-me cookie with it."""
    end(db.session(), getattr(user, "login_token", None))
    logout_user()
