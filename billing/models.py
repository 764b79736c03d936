"""The core tables. SQLAlchemy only: no Flask here, so services and the
command line can use them with any session."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry, relationship

from billing import clock
from billing.ledger.rules import KindRule, PolicyRule

if TYPE_CHECKING:
    from billing.ledger.models import Overage

# Text a provider writes once per language: {"en": "...", "fr": "..."}.
Translated = dict[str, Any]


@event.listens_for(Engine, "connect")
def _sqlite_enforces_foreign_keys(dbapi_connection: object, _record: object) -> None:
    """SQLite ignores foreign keys unless asked, per connection: without this a
    row could point at a pack or lot that no longer exists."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()



class Base(DeclarativeBase):
    registry = registry(
        # Named constraints, so that later migrations can drop or alter them.
        metadata=MetaData(
            naming_convention={
                "ix": "ix_%(column_0_label)s",
                "uq": "uq_%(table_name)s_%(column_0_name)s",
                "ck": "ck_%(table_name)s_%(constraint_name)s",
                "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
                "pk": "pk_%(table_name)s",
            }
        ),
        type_annotation_map={
            datetime: DateTime(timezone=True),
            Translated: JSON,
        }
    )


def localized(text: Translated | None, locale: str, fallback: str = "en") -> Any:
    """The text in ``locale``, else the fallback language, else any."""
    if not text:
        return ""
    for lang in (locale, locale.split("_")[0], fallback):
        if lang in text:
            return text[lang]
    return next(iter(text.values()))


class Catalogue(Base):
    """One provider's offer, as loaded from a preset file."""

    __tablename__ = "catalogues"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    tagline: Mapped[Translated] = mapped_column(default=dict)
    currency: Mapped[str] = mapped_column(String(3))
    language: Mapped[str] = mapped_column(String(5))
    position: Mapped[int] = mapped_column(default=0)

    packs: Mapped[list[Pack]] = relationship(back_populates="catalogue", order_by="Pack.position")
    policies: Mapped[list[Policy]] = relationship(back_populates="catalogue")


# The low-balance warning of a balance, unless the account sets its own:
# this share of the last pack bought on it (billing.notifications.alerts).
DEFAULT_LOW_BALANCE_PERCENT = 20


class Policy(Base):
    """The rules that turn work into units: see billing.ledger.rules."""

    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint("unit IN ('minute', 'credit', 'ticket')", name="policy_unit"),
        CheckConstraint("unit_minutes >= 1 AND step >= 1", name="policy_blocks"),
        CheckConstraint("overage_mode IN ('block', 'ask', 'allow')", name="policy_overage"),
        CheckConstraint("low_balance_percent >= 0 AND low_balance_percent <= 100", name="policy_low_balance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id"))
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[Translated] = mapped_column(default=dict)
    unit: Mapped[str] = mapped_column(String(10))
    unit_minutes: Mapped[int] = mapped_column(default=1)
    step: Mapped[int] = mapped_column(default=1)
    default_kind: Mapped[str | None] = mapped_column(String(40))
    overage_mode: Mapped[str] = mapped_column(String(10), default="block")
    # Rate at which approved overage is billed (minor units of the catalogue currency).
    overage_hourly_rate: Mapped[int | None]
    # The default low-balance threshold: this share of the last pack bought
    # on the balance (0 turns the default warning off).
    low_balance_percent: Mapped[int] = mapped_column(
        default=DEFAULT_LOW_BALANCE_PERCENT, server_default=str(DEFAULT_LOW_BALANCE_PERCENT))

    catalogue: Mapped[Catalogue] = relationship(back_populates="policies")
    kinds: Mapped[list[RequestKind]] = relationship(
        back_populates="policy", order_by="RequestKind.position", cascade="all, delete-orphan"
    )

    def rule(self) -> PolicyRule:
        return PolicyRule(
            unit=self.unit,  # type: ignore[arg-type]
            unit_minutes=self.unit_minutes,
            step=self.step,
            kinds={k.slug: k.rule() for k in self.kinds},
            default_kind=self.default_kind,
        )


class RequestKind(Base):
    __tablename__ = "request_kinds"
    __table_args__ = (
        UniqueConstraint("policy_id", "slug"),
        CheckConstraint("minimum >= 0", name="kind_minimum"),
        CheckConstraint("fixed IS NULL OR fixed >= 0", name="kind_fixed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    slug: Mapped[str] = mapped_column(String(40))
    name: Mapped[Translated] = mapped_column(default=dict)
    minimum: Mapped[int] = mapped_column(default=0)
    fixed: Mapped[int | None]
    billable: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)

    policy: Mapped[Policy] = relationship(back_populates="kinds")

    def rule(self) -> KindRule:
        return KindRule(slug=self.slug, minimum=self.minimum, fixed=self.fixed, billable=self.billable)


PACK_KINDS = ("trial", "pack", "annual_plan", "subscription")


class Pack(Base):
    """A catalogue item: grants a quantity of a unit for a price."""

    __tablename__ = "packs"
    __table_args__ = (
        CheckConstraint("kind IN ('trial', 'pack', 'annual_plan', 'subscription')", name="pack_kind"),
        CheckConstraint("quantity >= 0 AND min_quantity >= 1", name="pack_quantity"),
        CheckConstraint("price IS NULL OR price >= 0", name="pack_price"),
        CheckConstraint("vat_rate_bp >= 0 AND vat_rate_bp < 10000", name="pack_vat"),
        CheckConstraint("validity_months IS NULL OR validity_months >= 1", name="pack_validity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="pack")
    name: Mapped[Translated] = mapped_column(default=dict)
    description: Mapped[Translated] = mapped_column(default=dict)
    # Units granted per item bought; a pooled bundle sells items from min_quantity.
    quantity: Mapped[int]
    unlimited: Mapped[bool] = mapped_column(default=False)
    # Minor units of ``currency``; None means the provider quotes on request.
    price: Mapped[int | None]
    currency: Mapped[str] = mapped_column(String(3))
    vat_rate_bp: Mapped[int] = mapped_column(default=0)
    price_includes_vat: Mapped[bool] = mapped_column(default=False)
    hourly_rate: Mapped[int | None]
    validity_months: Mapped[int | None]
    pooled: Mapped[bool] = mapped_column(default=False)
    min_quantity: Mapped[int] = mapped_column(default=1)
    registration_first: Mapped[bool] = mapped_column(default=False)
    topups_never_expire: Mapped[bool] = mapped_column(default=False)
    rollover_expired: Mapped[bool] = mapped_column(default=False)
    commitment_months: Mapped[int | None]
    billing_period_months: Mapped[int | None]
    resubscribe_after_months: Mapped[int | None]
    refundable: Mapped[bool] = mapped_column(default=True)
    included: Mapped[Translated] = mapped_column(default=dict)
    excluded: Mapped[Translated] = mapped_column(default=dict)
    position: Mapped[int] = mapped_column(default=0)
    retired_at: Mapped[datetime | None]

    catalogue: Mapped[Catalogue] = relationship(back_populates="packs")
    policy: Mapped[Policy] = relationship()

    @property
    def unit(self) -> str:
        return self.policy.unit


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


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IS NULL OR role IN ('owner', 'member')", name="user_role"),
        CheckConstraint("is_staff OR account_id IS NOT NULL", name="user_has_account"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
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


# pending: waiting for payments to cover the total → paid (credited and
# invoiced) | cancelled; paid → refunded once credit notes cover the total.
ORDER_STATUSES = ("pending", "paid", "cancelled", "refunded")
# How the order is paid: the identifiers of common.payments' providers, and
# ``free`` for the trial.
ORDER_METHODS = ("card", "transfer", "cheque", "free")


class Order(Base):
    """A request to buy a pack, or the bill of an approved overage
    (billing.orders.overage_bills). Its payments are billing.orders.models.Payment
    rows: a separate state machine, and the order is paid when its confirmed
    payments cover ``total``. The price is copied from the pack when the
    order is placed, so that a catalogue edit never changes what was sold."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="order_quantity"),
        CheckConstraint("status IN ('pending', 'paid', 'cancelled', 'refunded')", name="order_status"),
        CheckConstraint("method IN ('card', 'transfer', 'cheque', 'free')", name="order_method"),
        CheckConstraint("net >= 0 AND vat >= 0 AND total = net + vat", name="order_amounts"),
        CheckConstraint("(pack_id IS NULL) != (overage_id IS NULL)", name="order_item"),
        # One bill of an overage awaits its money at a time: approving twice,
        # or two owners at once, places one. A bill replaced after a
        # correction is cancelled, so its successor can wait in turn.
        Index("ix_orders_overage_pending", "overage_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    # What is ordered: a pack, or the bill of an overage; exactly one of them.
    pack_id: Mapped[int | None] = mapped_column(ForeignKey("packs.id"))
    # use_alter: orders → overages → tickets → subscriptions → orders is a
    # cycle, which create_all can only build with one key added afterwards.
    overage_id: Mapped[int | None] = mapped_column(ForeignKey("overages.id", use_alter=True))
    placed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Items of the pack; for an overage, the units billed, which its
    # ``unit_price`` covers together (the overage may shrink later; the bill
    # keeps what it billed).
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    method: Mapped[str] = mapped_column(String(20), default="transfer")
    # Minor units of ``currency``: the pack's price per item as stated, and
    # the order's net, VAT and gross (``total``) from billing.catalogue.pricing.
    unit_price: Mapped[int] = mapped_column(default=0)
    price_includes_vat: Mapped[bool] = mapped_column(default=False)
    vat_rate_bp: Mapped[int] = mapped_column(default=0)
    net: Mapped[int] = mapped_column(default=0)
    vat: Mapped[int] = mapped_column(default=0)
    total: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # What the payer writes on a transfer or a cheque (billing.orders.references).
    reference: Mapped[str | None] = mapped_column(String(40), unique=True)
    # The one-time token of the checkout form that placed it: the same form
    # sent twice (a double click, a reload) finds this order again.
    checkout_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Mail about the order goes out in the language of whoever placed it.
    language: Mapped[str] = mapped_column(String(5), default="en")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    paid_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str] = mapped_column(Text, default="")

    pack: Mapped[Pack | None] = relationship()
    overage: Mapped[Overage | None] = relationship()
    account: Mapped[Account] = relationship()
    placed_by: Mapped[User | None] = relationship()

    @property
    def ordered_pack(self) -> Pack:
        """The pack ordered, for an order that is not an overage's bill
        (constraint order_item: an order has a pack or an overage, never both)."""
        if self.pack is None:
            raise ValueError(f"order {self.id} bills overage {self.overage_id}: it has no pack")
        return self.pack

    @property
    def billed_overage(self) -> Overage:
        """The overage an overage's bill is for (see ``ordered_pack``)."""
        if self.overage is None:
            raise ValueError(f"order {self.id} is for pack {self.pack_id}: it bills no overage")
        return self.overage


# The ledger's tables live in billing.ledger.models, payments and invoices in
# billing.orders.models; they share this metadata: importing the models
# registers them, for migrations and create_all alike.
from billing.desk import models as desk_models  # noqa: E402,F401
from billing.ledger import models as ledger_models  # noqa: E402,F401
from billing.orders import models as order_models  # noqa: E402,F401
from billing.subscriptions import models as subscription_models  # noqa: E402,F401
