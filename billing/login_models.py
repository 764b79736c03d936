"""Who is logged in where: one row per login, so that a login can end on
the server (log out, log out everywhere, a new password) and not only in
the browser that holds its cookie. SQLAlchemy only, like billing.models;
the rules are portal.login_sessions'."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.models import Base, User


class LoginSession(Base):
    """One login of a user in one browser. The browser holds a random token
    (in its session cookie and, if asked, its remember-me cookie); only the
    token's SHA-256 is kept, so this table opens no session if it leaks."""

    __tablename__ = "login_sessions"
    __table_args__ = (Index("ix_login_sessions_user", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when it is logged out, or ended by a new password or "log out everywhere".
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    address: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[User] = relationship()
