"""The catalogue's tables: a provider's catalogue, its policies (the rules
that turn work into units) with their request kinds, and the packs it sells."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.ledger.rules import KindRule, PolicyRule, as_unit
from billing.models import Base, Translated


class Catalogue(Base):
    """One provider's offer, as loaded from a preset file."""

    __tablename__ = "catalogues"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    # In each language: the shop's pages name the provider in the reader's.
    name: Mapped[Translated] = mapped_column(default=dict)
    tagline: Mapped[Translated] = mapped_column(default=dict)
    currency: Mapped[str] = mapped_column(String(3))
    language: Mapped[str] = mapped_column(String(5))
    position: Mapped[int] = mapped_column(default=0)
    # The provider promises to publish its response times and ratings
    # (seed 004): the storefront links to its public service page.
    publishes_service_levels: Mapped[bool] = mapped_column(default=False, server_default=false())

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
        CheckConstraint("version >= 1", name="policy_version"),
        UniqueConstraint("slug", "version", name="uq_policies_slug_version"),
        # One current version a slug: the one new packs, tickets and presets use.
        Index("uq_policies_current_slug", "slug", unique=True,
              sqlite_where=text("superseded_at IS NULL"), postgresql_where=text("superseded_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id"))
    # The same slug names every version of a policy; lots and tickets point
    # at the version they were sold or opened under (billing.catalogue.editing).
    slug: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    # Set when an edit made a newer version: this one keeps serving what was sold under it.
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
            unit=as_unit(self.unit),
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
        CheckConstraint("version >= 1", name="pack_version"),
        # A version that is no longer current is off sale too.
        CheckConstraint("superseded_at IS NULL OR retired_at IS NOT NULL", name="pack_superseded_retired"),
        UniqueConstraint("slug", "version", name="uq_packs_slug_version"),
        Index("uq_packs_current_slug", "slug", unique=True,
              sqlite_where=text("superseded_at IS NULL"), postgresql_where=text("superseded_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    # As for policies: one slug, a version per change of terms made once sold.
    slug: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
    # Off sale since (retired, superseded, or a draft never published).
    retired_at: Mapped[datetime | None]
    # None: a draft the editor created and nobody published yet.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    catalogue: Mapped[Catalogue] = relationship(back_populates="packs")
    policy: Mapped[Policy] = relationship()

    @property
    def unit(self) -> str:
        return self.policy.unit

    @property
    def status(self) -> str:
        """superseded (an older version), draft, retired or on_sale."""
        if self.superseded_at is not None:
            return "superseded"
        if self.retired_at is None:
            return "on_sale"
        return "draft" if self.published_at is None else "retired"
