"""Catalogue presets and the queries and presenter built on them.

A preset is a TOML file in billing/catalogues/ describing one provider's
catalogue: its policies, request kinds and packs. ``load_preset`` validates
the whole file before writing anything, then upserts it by slug in one
transaction, so loading twice changes nothing and a broken file writes
nothing. No Flask here: callers pass a SQLAlchemy session and a locale.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from babel.numbers import list_currencies
from sqlalchemy import Select, case, exists, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from billing import clock
from billing.catalogue import pricing, versions
from billing.catalogue.models import DEFAULT_LOW_BALANCE_PERCENT, PACK_KINDS, Catalogue, Pack, Policy, RequestKind
from billing.errors import BillingError
from billing.ledger.rules import OVERAGE_MODES, UNITS, PolicyRule
from billing.models import Base, localized
from billing.text import french_spacing
from billing.transaction import atomic

PRESETS = Path(__file__).resolve().parent / "presets"
# Every text a buyer reads exists in each language the shop offers.
LANGUAGES = ("en", "fr", "es")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class CatalogueError(BillingError):
    """A preset that cannot be loaded; the message names the file and the field."""


# --- Reading and validating a file -----------------------------------------

Check = Callable[[Any], Any]  # the clean value, or ValueError saying what is wrong
REQUIRED = object()


def _whole(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {value!r}")
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}, got {value}")
        return value

    return check


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise ValueError(f"must be lower-case letters, digits and dashes, got {value!r}")
    return value


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return check


def _currency(value: Any) -> str:
    if not isinstance(value, str) or value not in list_currencies():
        raise ValueError(f"must be an ISO 4217 currency code, got {value!r}")
    return value


def _per_language(check: Check, required: bool) -> Check:
    """A table with one value per language: all of them, or (when optional) none."""

    def per_language(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"must be a table of {', '.join(LANGUAGES)}")
        unknown = sorted(set(value) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language {unknown[0]!r}")
        missing = [lang for lang in LANGUAGES if lang not in value]
        if missing and (required or value):
            raise ValueError(f"missing language {missing[0]!r}")
        checked = {lang: check(value[lang]) for lang in LANGUAGES if lang in value}
        if "fr" in checked:  # written with plain spaces in a preset: French typography on load
            fr = checked["fr"]
            checked["fr"] = [french_spacing(t) for t in fr] if isinstance(fr, list) else french_spacing(fr)
        return checked

    return per_language


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("must be a list of strings")
    return [_text(item) for item in value]


_translated = _per_language(_text, required=True)


def _name(value: Any) -> dict[str, str]:
    """A provider's name: a table of the three languages, or one text (a
    brand reads the same in every language) that stands for all three."""
    name: dict[str, str] = _translated({lang: value for lang in LANGUAGES} if isinstance(value, str) else value)
    return name


_translated_lists = _per_language(_texts, required=False)

Spec = dict[str, tuple[Check, Any]]

CATALOGUE_FIELDS: Spec = {
    "name": (_name, REQUIRED),
    "currency": (_currency, REQUIRED),
    "language": (_choice(LANGUAGES), REQUIRED),
    "tagline": (_translated, REQUIRED),
    "position": (_whole(0), 0),
    "publishes_service_levels": (_flag, False),
}
POLICY_FIELDS: Spec = {
    "slug": (_slug, REQUIRED),
    "name": (_translated, REQUIRED),
    "unit": (_choice(UNITS), REQUIRED),
    "unit_minutes": (_whole(1), 1),
    "step": (_whole(1), 1),
    "default_kind": (_optional(_slug), None),
    "overage_mode": (_choice(OVERAGE_MODES), "block"),
    "overage_hourly_rate": (_optional(_whole(0)), None),
    "low_balance_percent": (_whole(0, 100), DEFAULT_LOW_BALANCE_PERCENT),
}
KIND_FIELDS: Spec = {
    "slug": (_slug, REQUIRED),
    "name": (_translated, REQUIRED),
    "minimum": (_whole(0), 0),
    "fixed": (_optional(_whole(0)), None),
    "billable": (_flag, True),
}
PACK_FIELDS: Spec = {
    "slug": (_slug, REQUIRED),
    "kind": (_choice(PACK_KINDS), "pack"),
    "policy": (_slug, REQUIRED),
    "name": (_translated, REQUIRED),
    "description": (_translated, REQUIRED),
    "quantity": (_whole(0), REQUIRED),
    "unlimited": (_flag, False),
    # Minor units of the catalogue's currency; absent means "price on request".
    "price": (_optional(_whole(0)), None),
    "vat_rate_bp": (_whole(0, 9999), 0),
    "price_includes_vat": (_flag, False),
    "hourly_rate": (_optional(_whole(0)), None),
    "validity_months": (_optional(_whole(1)), None),
    "pooled": (_flag, False),
    "min_quantity": (_whole(1), 1),
    "registration_first": (_flag, False),
    "topups_never_expire": (_flag, False),
    "rollover_expired": (_flag, False),
    "commitment_months": (_optional(_whole(1)), None),
    "billing_period_months": (_optional(_whole(1)), None),
    "resubscribe_after_months": (_optional(_whole(1)), None),
    "refundable": (_flag, True),
    "included": (_translated_lists, {}),
    "excluded": (_translated_lists, {}),
}
# What [pack_defaults] may set: everything that is not one pack's identity.
DEFAULTABLE = set(PACK_FIELDS) - {"slug", "name"}


def _fields(raw: Any, spec: Spec, where: str, nested: tuple[str, ...] = ()) -> dict[str, Any]:
    """The clean values of one table; ``nested`` names sub-lists read by the caller."""
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a table")
    unknown = sorted(set(raw) - set(spec) - set(nested))
    if unknown:
        raise CatalogueError(f"{where}: unknown field {unknown[0]!r}")
    values = {}
    for name, (check, default) in spec.items():
        value = raw.get(name, default)
        if value is REQUIRED:
            raise CatalogueError(f"{where}: missing field {name!r}")
        try:
            values[name] = check(value)
        except ValueError as error:
            raise CatalogueError(f"{where}, field {name!r}: {error}") from None
    return values


def _tables(raw: dict[str, Any], key: str, where: str) -> Iterator[tuple[str, Any]]:
    """Each table of the array ``key``, with a name for error messages."""
    tables = raw.get(key, [])
    if not isinstance(tables, list):
        raise CatalogueError(f"{where}: {key} must be an array of tables ([[{key}]])")
    for index, table in enumerate(tables):
        slug = table.get("slug") if isinstance(table, dict) else None
        yield f"{where}: {key}[{index}]" + (f" ({slug})" if isinstance(slug, str) else ""), table


@dataclass(frozen=True)
class PolicySpec:
    values: dict[str, Any]  # Policy columns
    kinds: list[dict[str, Any]]  # RequestKind columns, in file order

    @property
    def slug(self) -> str:
        return str(self.values["slug"])

    def rule(self) -> PolicyRule:
        # Through transient rows, so that the file and the database share one conversion.
        return Policy(**self.values, kinds=[RequestKind(**kind) for kind in self.kinds]).rule()


@dataclass(frozen=True)
class Preset:
    slug: str
    file: str
    catalogue: dict[str, Any]  # Catalogue columns
    policies: dict[str, PolicySpec]  # by slug, in file order
    packs: list[dict[str, Any]]  # Pack columns, with "policy" holding the policy's slug


def preset_names(directory: Path = PRESETS) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.toml"))


def read_preset(name: str, directory: Path = PRESETS) -> Preset:
    """Parse and validate a preset without touching the database."""
    path = directory / f"{name}.toml"
    if name not in preset_names(directory):
        known = ", ".join(preset_names(directory))
        raise CatalogueError(f"unknown preset {name!r} (known: {known})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(f"{path.name}: not valid TOML: {error}") from None
    return _preset(raw, name, path.name)


def _preset(raw: dict[str, Any], slug: str, file: str) -> Preset:
    if not SLUG.fullmatch(slug):
        raise CatalogueError(f"{file}: the file name must be a slug (lower-case letters, digits and dashes)")
    unknown = sorted(set(raw) - {"catalogue", "policies", "pack_defaults", "packs"})
    if unknown:
        raise CatalogueError(f"{file}: unknown table {unknown[0]!r}")
    catalogue = _fields(raw.get("catalogue"), CATALOGUE_FIELDS, f"{file}: [catalogue]")
    policies = [_policy(table, where) for where, table in _tables(raw, "policies", file)]
    defaults = raw.get("pack_defaults", {})
    if not isinstance(defaults, dict):
        raise CatalogueError(f"{file}: [pack_defaults] must be a table")
    stray = sorted(set(defaults) - DEFAULTABLE)
    if stray:
        raise CatalogueError(f"{file}: [pack_defaults]: field {stray[0]!r} cannot have a default")
    packs = [_pack(table, defaults, where) for where, table in _tables(raw, "packs", file)]
    preset = Preset(slug, file, catalogue, {policy.slug: policy for policy in policies}, packs)
    _check_references(preset, policies)
    return preset


def _policy(table: Any, where: str) -> PolicySpec:
    values = _fields(table, POLICY_FIELDS, where, nested=("kinds",))
    kinds = [_fields(kind, KIND_FIELDS, kind_where) for kind_where, kind in _tables(table, "kinds", where)]
    for position, kind in enumerate(kinds):
        kind["position"] = position
    slugs = [kind["slug"] for kind in kinds]
    if len(set(slugs)) != len(slugs):
        raise CatalogueError(f"{where}: request kind slugs must be unique")
    if values["default_kind"] is not None and values["default_kind"] not in slugs:
        raise CatalogueError(f"{where}, field 'default_kind': {values['default_kind']!r} is not one of its kinds")
    return PolicySpec(values, kinds)


def _pack(table: Any, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}: must be a table")
    values = _fields({**defaults, **table}, PACK_FIELDS, where)
    if values["unlimited"] != (values["quantity"] == 0):
        raise CatalogueError(f"{where}, field 'quantity': 0 for an unlimited pack, at least 1 otherwise")
    if values["kind"] == "trial" and values["price"] != 0:
        raise CatalogueError(f"{where}, field 'price': a trial is free (price = 0)")
    return values


def check_pack(values: dict[str, Any]) -> dict[str, Any]:
    """A pack's values (as a [[packs]] table) checked as a file's would be; CatalogueError if wrong."""
    return _pack(values, {}, f"pack {values.get('slug')}")


def check_policy(values: dict[str, Any], kinds: list[dict[str, Any]]) -> PolicySpec:
    """A policy's values and its kinds checked as a file's would be; CatalogueError if wrong."""
    table = {**values, "kinds": [{k: v for k, v in kind.items() if k != "position"} for kind in kinds]}
    return _policy(table, f"policy {values.get('slug')}")


def _check_references(preset: Preset, policies: list[PolicySpec]) -> None:
    """Slugs start with the catalogue's and name one row; packs name a policy of the file."""
    prefix = f"{preset.slug}-"
    slugs = [policy.slug for policy in policies] + [pack["slug"] for pack in preset.packs]
    for slug in slugs:
        if not slug.startswith(prefix):
            raise CatalogueError(f"{preset.file}: slug {slug!r} must start with {prefix!r}")
    # Pack and policy slugs share one namespace, so that a slug names one policy for the estimator.
    duplicate = next((slug for slug in slugs if slugs.count(slug) > 1), None)
    if duplicate:
        raise CatalogueError(f"{preset.file}: slug {duplicate!r} is used twice")
    for pack in preset.packs:
        if pack["policy"] not in preset.policies:
            raise CatalogueError(f"{preset.file}: pack {pack['slug']!r}, field 'policy': "
                                 f"no policy {pack['policy']!r} in this file")


# --- Writing it -------------------------------------------------------------

ACTIONS = ("created", "updated", "unchanged", "retired", "restored", "deleted")


@dataclass
class LoadReport:
    """What a load did, one entry a row: ("created", "pack toopixel-36")."""

    catalogue: str
    changes: list[tuple[str, str]] = field(default_factory=list)

    def add(self, action: str, row: str) -> None:
        self.changes.append((action, row))

    def rows(self, action: str) -> list[str]:
        return [row for done, row in self.changes if done == action]

    def lines(self) -> list[str]:
        """Every change, then a summary: what the command line prints."""
        lines = [f"{action} {row}" for action, row in self.changes if action != "unchanged"]
        counts = ", ".join(f"{len(self.rows(action))} {action}" for action in ACTIONS)
        return [*lines, f"{self.catalogue}: {counts}"]


def load_preset(session: Session, name: str, directory: Path = PRESETS) -> LoadReport:
    """Create or update the catalogue of preset ``name``, as one unit of work: all of it, or nothing."""
    return load(session, read_preset(name, directory))


def parse_preset(text: str, name: str) -> Preset:
    """A preset from the text of a file named ``name``.toml (an upload), validated."""
    file = f"{name}.toml"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(f"{file}: not valid TOML: {error}") from None
    return _preset(raw, name, file)


def load(session: Session, preset: Preset) -> LoadReport:
    """Create or update the preset's catalogue, as one unit of work.

    Rows are matched by slug among the current versions; a pack or policy
    already sold gets a new version rather than new terms
    (billing.catalogue.versions)."""
    report = LoadReport(preset.slug)
    with atomic(session):
        now = clock.now()
        _check_owners(session, preset)
        catalogue = _upsert_catalogue(session, preset, report)
        policies = {slug: _upsert_policy(session, catalogue, spec, report, now)
                    for slug, spec in preset.policies.items()}
        _sync_packs(session, catalogue, preset, policies, report, now)
        _drop_unused_policies(session, catalogue, preset, report)
    return report


def _check_owners(session: Session, preset: Preset) -> None:
    """A slug already used by another catalogue would be stolen by an upsert."""
    for model, slugs in ((Policy, list(preset.policies)), (Pack, [pack["slug"] for pack in preset.packs])):
        clash = session.execute(
            select(model.slug, Catalogue.slug)
            .join(Catalogue, model.catalogue_id == Catalogue.id)
            .where(model.slug.in_(slugs), Catalogue.slug != preset.slug)
        ).first()
        if clash:
            raise CatalogueError(f"{preset.file}: slug {clash[0]!r} belongs to catalogue {clash[1]!r}")


def _assign(row: Base, values: dict[str, Any]) -> bool:
    """Set the row's attributes; True when any of them changed."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _note(report: LoadReport, row: str, done: str) -> None:
    report.add({"versioned": "updated"}.get(done, done), row)


def _upsert_catalogue(session: Session, preset: Preset, report: LoadReport) -> Catalogue:
    catalogue = session.scalar(select(Catalogue).where(Catalogue.slug == preset.slug))
    created = catalogue is None
    if catalogue is None:
        catalogue = Catalogue(slug=preset.slug)
        session.add(catalogue)
    changed = _assign(catalogue, preset.catalogue)
    _note(report, f"catalogue {preset.slug}", "created" if created else "updated" if changed else "unchanged")
    return catalogue


def _upsert_policy(session: Session, catalogue: Catalogue, spec: PolicySpec, report: LoadReport,
                   now: datetime) -> Policy:
    policy = versions.current_policy(session, spec.slug)
    if policy is None:
        policy = Policy(catalogue=catalogue, **spec.values, kinds=[RequestKind(**kind) for kind in spec.kinds])
        session.add(policy)
        session.flush()
        _note(report, f"policy {spec.slug}", "created")
        return policy
    policy, done = versions.revise_policy(session, policy, spec.values, spec.kinds, now)
    _note(report, f"policy {spec.slug}", done)
    return policy


def _sync_packs(session: Session, catalogue: Catalogue, preset: Preset, policies: dict[str, Policy],
                report: LoadReport, now: datetime) -> None:
    existing = {pack.slug: pack for pack in session.scalars(
        select(Pack).where(Pack.catalogue_id == catalogue.id, Pack.superseded_at.is_(None)))}
    for position, values in enumerate(preset.packs):
        columns = {**{k: v for k, v in values.items() if k != "policy"}, "policy_id": policies[values["policy"]].id,
                   "currency": preset.catalogue["currency"], "position": position, "retired_at": None}
        pack = existing.pop(values["slug"], None)
        if pack is None:
            session.add(Pack(catalogue_id=catalogue.id, published_at=now, **columns))
            report.add("created", f"pack {values['slug']}")
            continue
        restored = pack.retired_at is not None
        pack, done = versions.revise_pack(session, pack, {**columns, "published_at": pack.published_at or now}, now)
        if restored:
            report.add("restored", f"pack {pack.slug}")
        else:
            _note(report, f"pack {pack.slug}", done)
    for pack in existing.values():
        _remove_pack(session, pack, report, now)
    session.flush()
    session.expire(catalogue, ["packs", "policies"])


def _remove_pack(session: Session, pack: Pack, report: LoadReport, now: datetime) -> None:
    """Delete a pack the file no longer lists, unless anything points at it
    (an order, a lot): then retire it, so history keeps its pack."""
    if not versions.in_use(session, pack):
        session.delete(pack)
        report.add("deleted", f"pack {pack.slug}")
    elif pack.retired_at is None:
        pack.retired_at = now
        report.add("retired", f"pack {pack.slug}")


def _drop_unused_policies(session: Session, catalogue: Catalogue, preset: Preset, report: LoadReport) -> None:
    """A policy the file no longer lists goes once nothing uses it: no pack,
    retired or not, no lot, no ticket. Its request kinds go with it."""
    session.flush()
    for policy in session.scalars(select(Policy).where(Policy.catalogue_id == catalogue.id,
                                                       Policy.superseded_at.is_(None))):
        if policy.slug in preset.policies:
            continue
        if not versions.in_use(session, policy, besides=(RequestKind,)):
            session.delete(policy)
            report.add("deleted", f"policy {policy.slug}")


# --- Queries and presenter for the shop and the command line -----------------

# The order a buyer reads a catalogue in: try it, buy a pack, commit for a year, subscribe.
KIND_ORDER = case({kind: position for position, kind in enumerate(PACK_KINDS)}, value=Pack.kind)


def _on_sale() -> Select[Pack]:
    """Packs not retired, with the catalogue and the policy (and its kinds) loaded."""
    return (
        select(Pack)
        .join(Pack.catalogue)
        .where(Pack.retired_at.is_(None))  # drafts and older versions are off sale too
        .options(contains_eager(Pack.catalogue), selectinload(Pack.policy).selectinload(Policy.kinds))
    )


def active_packs(session: Session, catalogue: str | None = None) -> list[Pack]:
    """Packs on sale, in catalogue order; only those of ``catalogue`` (a slug) when given."""
    query = _on_sale().order_by(Catalogue.position, Catalogue.slug, KIND_ORDER, Pack.position)
    if catalogue is not None:
        query = query.where(Catalogue.slug == catalogue)
    return list(session.scalars(query))


def active_pack(session: Session, slug: str) -> Pack | None:
    """The pack on sale under ``slug``; None when there is none or it is retired."""
    return session.scalar(_on_sale().where(Pack.slug == slug))


def has_catalogue(session: Session) -> bool:
    return bool(session.scalar(select(exists().select_from(Catalogue))))


def find_policy(session: Session, slug: str) -> Policy | None:
    """The policy named ``slug``, or the policy of the pack named ``slug``."""
    policy = versions.current_policy(session, slug)
    if policy is None:
        policy = session.scalar(select(Policy).join(Pack, Pack.policy_id == Policy.id)
                                .where(Pack.slug == slug, Pack.superseded_at.is_(None)))
    return policy


@dataclass(frozen=True)
class Offer:
    """What a buyer compares, computed once for the shop pages and the command line.

    Amounts are minor units of ``pack.currency``. ``per_hour``, ``per_unit``
    and ``saving`` are on the basis the price is stated in (net, or VAT
    included when ``pack.price_includes_vat``), as the hourly rate is.
    """

    pack: Pack
    name: str
    description: str
    included: tuple[str, ...]
    excluded: tuple[str, ...]
    price: pricing.Price | None  # net, VAT and gross; None: price on request
    minutes: int | None  # working time one item buys; None when unlimited
    per_hour: int | None
    per_unit: int | None
    saving: int | None  # against the hourly rate; None when there is none to show

    @property
    def on_request(self) -> bool:
        return self.price is None


def offer(pack: Pack, locale: str) -> Offer:
    minutes = None if pack.unlimited else pricing.minutes_of(pack.quantity, pack.policy.unit_minutes)
    price = None
    per_hour = per_unit = saving = None
    if pack.price is not None:
        price = pricing.split_vat(pack.price, pack.currency, pack.vat_rate_bp, pack.price_includes_vat)
    if pack.price is not None and minutes is not None:
        per_hour = pricing.per_hour(pack.price, minutes)
        per_unit = pricing.per_unit(pack.price, pack.quantity)
        saving = pricing.saving(pack.price, minutes, pack.hourly_rate)
    return Offer(
        pack=pack,
        name=localized(pack.name, locale),
        description=localized(pack.description, locale),
        included=tuple(localized(pack.included, locale) or ()),
        excluded=tuple(localized(pack.excluded, locale) or ()),
        price=price,
        minutes=minutes,
        per_hour=per_hour,
        per_unit=per_unit,
        saving=saving,
    )
