"""The outbox: every message Forfait owes someone, written in the same
transaction as the event that causes it, delivered afterwards (by
common.mail.delivery) with retries. SQLAlchemy only, like the rest of billing/.

One row is one message to one recipient. Its key is the event's key, the
kind and the recipient, under a unique constraint: an event retried, a
webhook delivered twice or a job run twice queues each message once.

Delivery claims a row before sending it: an atomic compare-and-set on the
row (``claim``), so two workers never send the same message; the claim is a
lease, so a worker that dies mid-send leaves the message to be tried again
once the lease has run out. A failure is kept with its error and retried
with back-off, until MAX_ATTEMPTS, when the message is ``failed`` and waits
for staff to send it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    String,
    Text,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from billing.accounts.models import User
from billing.clock import UTCDateTime, utc
from billing.errors import BillingError
from billing.models import Base
from billing.transaction import atomic

STATUSES = ("pending", "sent", "failed")
MAX_ATTEMPTS = 8
# How long a claimed message is left to its worker before another may try:
# well beyond one SMTP exchange (common.mail gives up after MAIL_TIMEOUT, 10 s).
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Topic:
    """What a user may switch off: a group of message kinds.

    ``money`` topics always reach the account's owners; the others reach
    whoever leaves them on (all are on until switched off)."""

    slug: str
    kinds: tuple[str, ...]
    money: bool = False
    staff: bool = False


TOPICS = (
    Topic("orders", ("order_received", "payment_confirmed", "payment_partial", "order_reminder", "order_cancelled",
                     "trial_started"),
          money=True),
    Topic("low_balance", ("low_balance",), money=True),
    Topic("expiring", ("expiring",), money=True),
    Topic("overage", ("overage_request",), money=True),
    Topic("ticket_opened", ("ticket_opened",)),
    Topic("replies", ("staff_reply",)),
    Topic("resolved", ("ticket_resolved",)),
    Topic("new_tickets", ("ticket_opened_staff",), staff=True),
    Topic("quote_requests", ("quote_requested_staff",), staff=True),
)
TOPIC_OF = {kind: topic for topic in TOPICS for kind in topic.kinds}
# Messages nobody can switch off: they carry a link the person asked for.
ESSENTIAL = ("verify_email", "reset_password", "invitation", "quote_sent")
KINDS = (*ESSENTIAL, *TOPIC_OF)


def _within(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_within("status", STATUSES), name="outbox_status"),
        CheckConstraint(_within("kind", KINDS), name="outbox_kind"),
        CheckConstraint("attempts >= 0", name="outbox_attempts"),
        # What a worker looks for: pending messages that are due.
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    # The ids and figures the message is written from, as they were at the event.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])


class Preference(Base):
    """A topic a user switched off (or on again): no row means on."""

    __tablename__ = "notification_preferences"
    __table_args__ = (CheckConstraint(_within("topic", (t.slug for t in TOPICS)), name="preference_topic"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool]


class OutboxError(BillingError):
    """Something the caller may not do; the message is for the user."""


# --- Rules (pure) -----------------------------------------------------------

def backoff(attempts: int) -> timedelta:
    """The wait before the next try after ``attempts`` failed ones: 1, 2, 4 …
    minutes, at most 6 hours, so a server down for a night is retried all
    night without hammering it."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=6))


def locked_on(topic: Topic, user: User) -> bool:
    """A money topic is always on for an account's owner."""
    return topic.money and user.is_owner


def topics_for(user: User) -> list[Topic]:
    """The topics a user's preferences page offers."""
    return [t for t in TOPICS if t.staff == user.is_staff]


# --- Preferences ------------------------------------------------------------

def switched_off(session: Session, user_ids: Iterable[int]) -> set[tuple[int, str]]:
    ids = list(set(user_ids))
    if not ids:
        return set()
    return set(session.execute(select(Preference.user_id, Preference.topic).where(
        Preference.user_id.in_(ids), Preference.enabled.is_(False))).all())


def preferences(session: Session, user: User) -> dict[str, bool]:
    off = {topic for _id, topic in switched_off(session, [user.id])}
    return {t.slug: locked_on(t, user) or t.slug not in off for t in topics_for(user)}


def set_preferences(session: Session, user: User, wanted: dict[str, bool]) -> dict[str, bool]:
    """Save which of their topics ``user`` wants (a topic left out keeps its
    setting; a money topic stays on for an owner); one unit of work."""
    known = {t.slug: t for t in topics_for(user)}
    unknown = set(wanted) - set(known)
    if unknown:
        raise OutboxError(f"no such message topic: {', '.join(sorted(unknown))}")
    with atomic(session):
        for slug, enabled in wanted.items():
            row = session.get(Preference, (user.id, slug))
            enabled = bool(enabled) or locked_on(known[slug], user)
            if row is None:
                session.add(Preference(user_id=user.id, topic=slug, enabled=enabled))
            else:
                row.enabled = enabled
    return preferences(session, user)


# --- Queueing ---------------------------------------------------------------

def _wants(user: User, kind: str, off: set[tuple[int, str]], always: set[int]) -> bool:
    if kind in ESSENTIAL or user.id in always:
        return True
    if not user.is_active:
        return False
    topic = TOPIC_OF[kind]
    return locked_on(topic, user) or (user.id, topic.slug) not in off


def enqueue(
    session: Session,
    kind: str,
    event_key: str,
    recipients: Sequence[User],
    *,
    now: datetime,
    payload: dict[str, Any] | None = None,
    account_id: int | None = None,
    always: Iterable[int] = (),
) -> list[str]:
    """Queue message ``kind`` about the event ``event_key`` for each of
    ``recipients`` who wants it (``always``: user ids who get it whatever
    their preferences, such as the buyer of an order), in each one's
    language, as part of the caller's transaction. Queuing the same event
    again adds nothing. Returns the keys queued by this call, which
    ``session.info["outbox"]`` also collects for a delivery right after the
    commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    now = utc(now)
    always = set(always)
    seen: set[int] = set()
    chosen: list[User] = []
    for user in recipients:
        if user.id not in seen:
            seen.add(user.id)
            chosen.append(user)
    off = switched_off(session, [u.id for u in chosen]) if kind not in ESSENTIAL else set()
    rows = [
        dict(key=f"{event_key}:{kind}:{user.id}", kind=kind, user_id=user.id, email=user.email,
             language=user.language, account_id=account_id, payload=payload or {}, status="pending", attempts=0,
             next_attempt_at=now, last_error="", created_at=now)
        for user in chosen if _wants(user, kind, off, always)
    ]
    return _insert(session, rows)


def enqueue_address(session: Session, kind: str, event_key: str, email: str, language: str, *, now: datetime,
                    payload: dict[str, Any] | None = None, account_id: int | None = None) -> list[str]:
    """Queue a message for an address that has no user yet (an invitation)."""
    if kind not in ESSENTIAL:
        raise ValueError(f"only an essential message goes to a bare address, not {kind!r}")
    now = utc(now)
    return _insert(session, [dict(
        key=f"{event_key}:{kind}:{email}", kind=kind, user_id=None, email=email, language=language,
        account_id=account_id, payload=payload or {}, status="pending", attempts=0, next_attempt_at=now,
        last_error="", created_at=now)])


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # A key queued already (the same event again) is skipped, not an error:
    # the caller's transaction goes on.
    inserted = session.execute(
        dialect.insert(OutboxMessage).values(rows).on_conflict_do_nothing(index_elements=["key"])
        .returning(OutboxMessage.key)
    ).scalars().all()
    session.info.setdefault("outbox", []).extend(inserted)
    return list(inserted)


def owners(session: Session, account_id: int) -> list[User]:
    return list(session.scalars(select(User).where(
        User.account_id == account_id, User.role == "owner", User.removed_at.is_(None)).order_by(User.id)))


def members(session: Session, account_id: int) -> list[User]:
    """Everyone in the account's pool, owners first."""
    return list(session.scalars(select(User).where(
        User.account_id == account_id, User.removed_at.is_(None)).order_by(User.role != "owner", User.id)))


def staff(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.is_staff.is_(True), User.removed_at.is_(None))
                                .order_by(User.id)))


# --- Delivering -------------------------------------------------------------

def _due(now: datetime) -> ColumnElement[bool]:
    return and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))


def due(session: Session, *, now: datetime, limit: int = 100, keys: Sequence[str] | None = None) -> list[int]:
    """Ids of messages due for a try, oldest first (only among ``keys`` when
    given). On PostgreSQL, rows another worker is claiming are skipped
    rather than waited for."""
    now = utc(now)
    query = select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(limit)
    if keys is not None:
        query = query.where(OutboxMessage.key.in_(list(keys)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    session.commit()
    return ids


def claim(session: Session, message_id: int, *, now: datetime) -> OutboxMessage | None:
    """Take the message for one try, or None when another worker has it (or
    it is no longer due). The compare-and-set and the commit make the claim
    visible to every other worker before anything is sent."""
    now = utc(now)
    claimed = cast(CursorResult[Any], session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id, _due(now))
        .values(claimed_until=now + LEASE, attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )).rowcount
    session.commit()
    if claimed != 1:
        return None
    return session.get_one(OutboxMessage, message_id, populate_existing=True)


def sent(session: Session, message: OutboxMessage, *, now: datetime, scrub: Sequence[str] = ()) -> None:
    """The server took it. ``scrub`` names payload fields to forget now that
    the message is out (a link that grants access)."""
    message.status = "sent"
    message.sent_at = utc(now)
    message.claimed_until = None
    message.last_error = ""
    if scrub:
        message.payload = {k: v for k, v in message.payload.items() if k not in scrub}
    session.commit()


def failed(session: Session, message: OutboxMessage, error: str, *, now: datetime, final: bool = False) -> None:
    """This try failed: try again after the back-off, or give up after
    MAX_ATTEMPTS (at once when ``final``: no later try can succeed)."""
    message.claimed_until = None
    message.last_error = error[:2000]
    if final or message.attempts >= MAX_ATTEMPTS:
        message.status = "failed"
    else:
        message.next_attempt_at = utc(now) + backoff(message.attempts)
    session.commit()


def resend(session: Session, message: OutboxMessage, *, by: User, now: datetime) -> OutboxMessage:
    """Staff send a message again: a failed or waiting one is tried at once
    with a fresh count of attempts; a sent one goes out once more."""
    if not by.is_staff:
        raise OutboxError("only staff send a message again")
    now = utc(now)
    with atomic(session):
        current = session.get_one(OutboxMessage, message.id, populate_existing=True, with_for_update=True)
        if current.claimed_until is not None and current.claimed_until > now:
            raise OutboxError("this message is being sent right now")
        if current.status == "sent" and current.kind == "invitation":
            raise OutboxError("an invitation's link is not kept once sent: invite the person again")
        current.status = "pending"
        current.attempts = 0
        current.next_attempt_at = now
        current.resent_by_id = by.id
    session.info.setdefault("outbox", []).append(current.key)
    return current


def listing(session: Session, *, status: str | None = None, limit: int = 200) -> list[OutboxMessage]:
    """What staff see: the newest messages first, of one status or all."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return list(session.scalars(query))


def counts(session: Session) -> dict[str, int]:
    found = dict(session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    return {status: found.get(status, 0) for status in STATUSES}
