"""The client organisations (accounts, one pool of credit each) and the people
who log in: their users, and the provider's staff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing import clock
from billing.models import Base


class Account(Base):
    """The client organisation: one pool of credit."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    # What its invoices say of it besides the name and country, as the client
    # writes it (billing.accounts checks both); empty until the owner gives them.
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    vat_id: Mapped[str] = mapped_column(String(40), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    users: Mapped[list[User]] = relationship(back_populates="account", order_by="User.id")


ROLES = ("owner", "member")
# The provider's staff: agents work the desk and confirm payments; admins
# also edit the catalogue, refund, adjust credit and manage staff.
STAFF_ROLES = ("admin", "agent")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # A client is an owner or a member of its account; staff are an admin or an agent.
        CheckConstraint("(is_staff AND role IS NOT NULL AND role IN ('admin', 'agent')) "
                        "OR (NOT is_staff AND (role IS NULL OR role IN ('owner', 'member')))", name="user_role"),
        CheckConstraint("is_staff OR account_id IS NOT NULL", name="user_has_account"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed: an account's people, counted in the staff's client list.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(5), default="en")
    role: Mapped[str | None] = mapped_column(String(10))
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    email_verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # Removed from the pool by an owner (billing.desk.remove_user): the row
    # stays for the history (tickets, ledger), the person loses all access.
    removed_at: Mapped[datetime | None]
    # A second factor (staff): the TOTP secret (base 32), and the last time
    # step a code was accepted for, so that a code seen once is refused after.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None]

    account: Mapped[Account | None] = relationship(back_populates="users")

    @property
    def client_account(self) -> Account:
        """The account of a client (constraint user_has_account: only staff have none)."""
        if self.account is None:
            raise ValueError(f"user {self.id} is staff: no client account")
        return self.account

    @property
    def is_owner(self) -> bool:
        return self.role == "owner" and self.removed_at is None

    @property
    def is_admin(self) -> bool:
        """An active staff member with the admin role."""
        return self.is_staff and self.role == "admin" and self.removed_at is None

    # The session protocol Flask-Login expects, written out so that billing
    # needs no Flask import.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.removed_at is None

    # The login this object was loaded or logged in for: a random token that
    # Flask-Login keeps as "the user id" in the session and the remember-me
    # cookie, so that ending the login on the server ends both
    # (common.identity.sessions). Not a column: __allow_unmapped__ lets the
    # ORM leave this plain annotation alone.
    __allow_unmapped__ = True
    login_token: str | None = None

    def get_id(self) -> str:
        if self.login_token is None:
            raise RuntimeError("a user is logged in through common.identity.sessions.log_in, which draws the token")
        return self.login_token


# Who is logged in where: one row per login, so that a login can end on the
# server (log out, log out everywhere, a new password) and not only in the
# browser that holds its cookie; the rules are common.identity.sessions'.
class LoginSession(Base):
    """One login of a user in one browser. The browser holds a random token
    (in its session cookie and, if asked, its remember-me cookie); only the
    token's SHA-256 is kept, so this table opens no session if it leaks."""

    __tablename__ = "login_sessions"
    __table_args__ = (Index("ix_login_sessions_user", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(clock.UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(clock.UTCDateTime)
    # Set when it is logged out, or ended by a new password or "log out everywhere".
    ended_at: Mapped[datetime | None] = mapped_column(clock.UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    address: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[User] = relationship()


class LoginEvent(Base):
    """A staff login, or a failed one (who, when, from where, how it ended),
    for staff to look through (common.identity.staff_log)."""

    __tablename__ = "login_events"
    __table_args__ = (Index("ix_login_events_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(clock.UTCDateTime)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    # login, wrong password, wrong code, throttled
    outcome: Mapped[str] = mapped_column(String(20))

    user: Mapped[User | None] = relationship()
