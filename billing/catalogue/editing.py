"""The catalogue editor's rules and services: what a staff form may hold, and
saving it (no Flask).

A form arrives as a mapping of field names to the text typed (a ticked box
is present, an empty one absent). ``*_draft`` turns it into the values of a
preset table (billing.catalogue.offers) and an error per field, each a
BillingError whose message the view translates: nothing is saved unless
every field is right, and whatever the editor accepts a preset file could
say too (the preset checks run last, as a guard). Field names: ``name-en``,
``included-fr`` (one item a line), ``kind-0-minimum`` (the request kinds of a
policy, one row each).

Saving goes through billing.catalogue.versions: a pack or policy already sold
gets a new version, never new terms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import tomli_w
from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from billing import audit
from billing.accounts.models import User
from billing.catalogue import offers, versions
from billing.catalogue.models import PACK_KINDS, Catalogue, Pack, Policy, RequestKind
from billing.errors import N_, BillingError
from billing.ledger.rules import OVERAGE_MODES, UNITS
from billing.models import MAX_INTEGER
from billing.text import french_spacing, single_line
from billing.transaction import atomic

LANGUAGES = offers.LANGUAGES
MISSING = {
    "en": N_("The English text is missing: every text is needed in English, French and Spanish."),
    "fr": N_("The French text is missing: every text is needed in English, French and Spanish."),
    "es": N_("The Spanish text is missing: every text is needed in English, French and Spanish."),
}
REQUIRED = N_("Enter a value.")
WHOLE = N_("Enter a whole number, such as %(example)d.")
AT_LEAST = N_("Enter at least %(minimum)d.")
AT_MOST = N_("Enter at most %(maximum)d.")
AMOUNT = N_("Enter an amount such as 950 or 950.50.")
NEGATIVE = N_("An amount cannot be negative.")
RATE = N_("Enter a rate in per cent, such as 8.1, below 100.")
CHOICE = N_("Choose one of the list.")
SLUG = N_("Use lower-case letters, digits and dashes, starting with %(prefix)s.")
SLUG_TAKEN = N_("Another pack or policy already uses this identifier.")
TOO_LONG = N_("Enter at most %(maximum)d characters.")
MINIMUM_ABOVE_FIXED = N_("A minimum of %(minimum)d cannot be more than the fixed price of %(fixed)d.")
KIND_TWICE = N_("Two request kinds use this identifier.")
NOT_A_KIND = N_("Choose one of this policy's request kinds.")
UNLIMITED = N_("0 for an unlimited pack, at least 1 otherwise.")
TRIAL_FREE = N_("A trial is free: its price is 0.")
CURRENCY = N_("Enter an ISO 4217 code, such as EUR or CHF.")
CURRENCY_SOLD = N_("Packs of this catalogue were sold in %(currency)s: its currency can no longer change.")
PRESET_REFUSED = N_("This file cannot be loaded: %(reason)s")
NOT_ON_SALE = N_("Only a pack on sale can be retired.")
NOT_OFF_SALE = N_("This pack is already on sale.")
SUPERSEDED = N_("This is an older version: edit the current one.")

# Names and texts one line each; descriptions and items may be longer.
MAX_NAME = 120
MAX_TEXT = 2000
MAX_ITEMS = 30


class EditorError(BillingError):
    """A refusal of the editor; ``field`` names the form field to blame."""


@dataclass
class Draft:
    """What a form said: preset values, and the errors by field name."""

    values: dict[str, Any] = field(default_factory=dict)
    kinds: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, EditorError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, name: str, message: str, **params: Any) -> None:
        self.errors.setdefault(name, EditorError(message, name, **params))


Form = Mapping[str, str]


def _get(form: Form, name: str) -> str:
    return (form.get(name) or "").strip()


def _flag(form: Form, name: str) -> bool:
    return bool(form.get(name))


def _whole(draft: Draft, form: Form, name: str, minimum: int, maximum: int = MAX_INTEGER, *,
           required: bool = True, example: int = 12) -> int | None:
    text = _get(form, name)
    if not text:
        if required:
            draft.fail(name, REQUIRED)
        return None
    if not re.fullmatch(r"-?[0-9]{1,10}", text):
        draft.fail(name, WHOLE, example=example)
        return None
    value = int(text)
    if value < minimum:
        draft.fail(name, AT_LEAST, minimum=minimum)
    elif value > maximum:
        draft.fail(name, AT_MOST, maximum=maximum)
    return value


def parse_amount(text: str, currency: str) -> int:
    """Minor units of ``text`` typed in ``currency``: 950, 1'500, 1 500.50 or 950,5.
    Raises ValueError with the message id."""
    text = re.sub(r"[\s\u00a0\u202f'’]", "", text)
    if text.startswith("-") and re.fullmatch(r"-[0-9.,]+", text):
        raise ValueError(NEGATIVE)
    digits = int(get_currency_precision(currency))
    match = re.fullmatch(r"([0-9]{1,9})(?:[.,]([0-9]*))?", text)
    if not match or len(match.group(2) or "") > digits:
        raise ValueError(AMOUNT)
    fraction = (match.group(2) or "").ljust(digits, "0")
    value = int(match.group(1)) * 10**digits + (int(fraction) if fraction else 0)
    if value > MAX_INTEGER:
        raise ValueError(AMOUNT)
    return int(value)


def format_amount(value: int | None, currency: str) -> str:
    """The amount as the form shows it: 950.00 (no grouping, a dot)."""
    if value is None:
        return ""
    digits = get_currency_precision(currency)
    if not digits:
        return str(value)
    return f"{value // 10**digits}.{value % 10**digits:0{digits}d}"


def _amount(draft: Draft, form: Form, name: str, currency: str, *, required: bool = False) -> int | None:
    text = _get(form, name)
    if not text:
        if required:
            draft.fail(name, REQUIRED)
        return None
    try:
        return parse_amount(text, currency)
    except ValueError as error:
        draft.fail(name, str(error))
        return None


def parse_rate(text: str) -> int:
    """Basis points of a rate typed in per cent: 8.1 → 810."""
    try:
        rate = Decimal(text.replace(",", ".").rstrip("%").strip())
    except InvalidOperation:
        raise ValueError(RATE) from None
    points = rate * 100
    if points != points.to_integral_value() or not 0 <= points < 10_000:
        raise ValueError(RATE)
    return int(points)


def format_rate(points: int) -> str:
    return f"{Decimal(points) / 100:f}".rstrip("0").rstrip(".") if points % 100 else str(points // 100)


def _choice(draft: Draft, form: Form, name: str, options: tuple[str, ...] | list[str]) -> str | None:
    value = _get(form, name)
    if value not in options:
        draft.fail(name, CHOICE)
        return None
    return value


def _translated(draft: Draft, form: Form, name: str, maximum: int = MAX_NAME, *, one_line: bool = True
                ) -> dict[str, str]:
    texts = {}
    for lang in LANGUAGES:
        key = f"{name}-{lang}"
        raw = form.get(key) or ""
        text = single_line(raw) if one_line else raw.replace("\r\n", "\n").strip()
        if not text:
            draft.fail(key, MISSING[lang])
        elif len(text) > maximum:
            draft.fail(key, TOO_LONG, maximum=maximum)
        texts[lang] = french_spacing(text) if lang == "fr" else text
    return texts


def _items(draft: Draft, form: Form, name: str) -> dict[str, list[str]]:
    """One item a line in each language; all three, or none at all."""
    lists = {lang: [single_line(line) for line in (form.get(f"{name}-{lang}") or "").splitlines() if line.strip()]
             for lang in LANGUAGES}
    if not any(lists.values()):
        return {}
    for lang, items in lists.items():
        key = f"{name}-{lang}"
        if not items:
            draft.fail(key, MISSING[lang])
        elif len(items) > MAX_ITEMS:
            draft.fail(key, AT_MOST, maximum=MAX_ITEMS)
        elif any(len(item) > MAX_NAME * 2 for item in items):
            draft.fail(key, TOO_LONG, maximum=MAX_NAME * 2)
    lists["fr"] = [french_spacing(item) for item in lists["fr"]]
    return lists


def _slug(draft: Draft, session: Session, form: Form, prefix: str, fallback: str,
          own_slug: str | None) -> str | None:
    """The identifier of a new pack or policy: typed, else made from the English name."""
    if own_slug is not None:
        return own_slug
    text = _get(form, "slug") or prefix + re.sub(r"[^a-z0-9]+", "-", fallback.lower()).strip("-")
    if not text.startswith(prefix):
        text = prefix + text
    if not offers.SLUG.fullmatch(text) or len(text) > 60 or text == prefix.rstrip("-"):
        draft.fail("slug", SLUG, prefix=prefix)
        return None
    taken = session.scalar(select(Pack.id).where(Pack.slug == text)) or session.scalar(
        select(Policy.id).where(Policy.slug == text))
    if taken:
        draft.fail("slug", SLUG_TAKEN)
    return text


# --- Catalogues ---------------------------------------------------------------

def catalogue_draft(session: Session, form: Form, catalogue: Catalogue | None) -> Draft:
    draft = Draft()
    if catalogue is None:
        slug = _get(form, "slug")
        if not offers.SLUG.fullmatch(slug) or len(slug) > 40:
            draft.fail("slug", SLUG, prefix="")
        elif session.scalar(select(Catalogue.id).where(Catalogue.slug == slug)):
            draft.fail("slug", SLUG_TAKEN)
        draft.values["slug"] = slug
    name = _translated(draft, form, "name")
    currency = _get(form, "currency").upper()
    if currency not in list_currencies():
        draft.fail("currency", CURRENCY)
    elif catalogue is not None and currency != catalogue.currency:
        sold = session.scalar(select(Pack.currency).where(Pack.catalogue_id == catalogue.id)
                              .where(or_(Pack.superseded_at.is_not(None), Pack.id.in_(_sold_packs(session)))))
        if sold:
            draft.fail("currency", CURRENCY_SOLD, currency=catalogue.currency)
    draft.values.update(
        name=name,
        tagline=_translated(draft, form, "tagline", MAX_TEXT, one_line=False),
        currency=currency,
        language=_choice(draft, form, "language", LANGUAGES),
        position=_whole(draft, form, "position", 0, 1000, example=1),
        publishes_service_levels=_flag(form, "publishes_service_levels"),
    )
    return draft


def _sold_packs(session: Session) -> list[int]:
    return [pack.id for pack in session.scalars(select(Pack)) if versions.in_use(session, pack)]


def save_catalogue(session: Session, catalogue: Catalogue | None, draft: Draft, actor: User | None
                   ) -> Catalogue:
    """Create or update a catalogue (nothing sold depends on its own columns:
    packs copy its currency, and it cannot change once they sold)."""
    assert draft.ok
    with atomic(session):
        before = snapshot(catalogue) if catalogue is not None else None
        if catalogue is None:
            catalogue = Catalogue(**draft.values)
            session.add(catalogue)
        else:
            for name, value in draft.values.items():
                setattr(catalogue, name, value)
            for pack in session.scalars(select(Pack).where(Pack.catalogue_id == catalogue.id,
                                                           Pack.superseded_at.is_(None))):
                pack.currency = catalogue.currency
        session.flush()
        after = snapshot(catalogue)
        if before != after:
            audit.record(actor, "catalogue.create" if before is None else "catalogue.update", "catalogue",
                         catalogue.id, before=before, after=after, session=session)
    return catalogue


# --- Policies -----------------------------------------------------------------

def kind_rows(form: Form) -> list[int]:
    """The indices of the request-kind rows the form holds."""
    rows = {int(match.group(1)) for name in form if (match := re.fullmatch(r"kind-([0-9]{1,3})-slug", name))}
    return sorted(rows)


def _kind_row_blank(form: Form, row: int) -> bool:
    names = [f"kind-{row}-slug", *(f"kind-{row}-name-{lang}" for lang in LANGUAGES),
             f"kind-{row}-minimum", f"kind-{row}-fixed"]
    return not any(_get(form, name) for name in names)


def policy_draft(session: Session, form: Form, catalogue: Catalogue, policy: Policy | None) -> Draft:
    draft = Draft()
    name = _translated(draft, form, "name")
    slug = _slug(draft, session, form, f"{catalogue.slug}-", name.get("en", ""),
                 policy.slug if policy is not None else None)
    kinds: list[dict[str, Any]] = []
    for row in kind_rows(form):
        prefix = f"kind-{row}-"
        if _flag(form, prefix + "remove") or _kind_row_blank(form, row):
            continue
        kind_slug = _get(form, prefix + "slug")
        kind_name = {lang: (form.get(f"{prefix}name-{lang}") or "") for lang in LANGUAGES}
        if not offers.SLUG.fullmatch(kind_slug) or len(kind_slug) > 40:
            draft.fail(prefix + "slug", SLUG, prefix="")
        elif kind_slug in {kind["slug"] for kind in kinds}:
            draft.fail(prefix + "slug", KIND_TWICE)
        sub = {f"name-{lang}": text for lang, text in kind_name.items()}
        kind_draft = Draft()
        texts = _translated(kind_draft, sub, "name")
        for key, error in kind_draft.errors.items():
            draft.fail(prefix + key, error.message, **error.params)
        minimum = _whole(draft, form, prefix + "minimum", 0, 100_000, required=False, example=15) or 0
        fixed = _whole(draft, form, prefix + "fixed", 0, 100_000, required=False, example=60)
        if fixed is not None and minimum > fixed:
            draft.fail(prefix + "minimum", MINIMUM_ABOVE_FIXED, minimum=minimum, fixed=fixed)
        kinds.append({"slug": kind_slug, "name": texts, "minimum": minimum, "fixed": fixed,
                      "billable": not _flag(form, prefix + "free"), "position": len(kinds)})
    default_kind = _get(form, "default_kind") or None
    if default_kind is not None and default_kind not in {kind["slug"] for kind in kinds}:
        draft.fail("default_kind", NOT_A_KIND)
    draft.values.update(
        slug=slug,
        name=name,
        unit=_choice(draft, form, "unit", UNITS),
        unit_minutes=_whole(draft, form, "unit_minutes", 1, 24 * 60, example=10),
        step=_whole(draft, form, "step", 1, 1000, example=1),
        default_kind=default_kind,
        overage_mode=_choice(draft, form, "overage_mode", OVERAGE_MODES),
        overage_hourly_rate=_amount(draft, form, "overage_hourly_rate", catalogue.currency),
        low_balance_percent=_whole(draft, form, "low_balance_percent", 0, 100, example=20),
    )
    draft.kinds = kinds
    if draft.ok:
        _guard(draft, lambda: offers.check_policy(draft.values, draft.kinds))
    return draft


def _guard(draft: Draft, check: Callable[[], object]) -> None:
    """The preset's own checks: the editor never saves what a file could not say."""
    try:
        check()
    except offers.CatalogueError as error:
        draft.fail("form", PRESET_REFUSED, reason=str(error))


def save_policy(session: Session, catalogue: Catalogue, policy: Policy | None, draft: Draft,
                now: datetime, actor: User | None) -> tuple[Policy, str]:
    """Create a policy, or revise one (a new version when anything was sold under it)."""
    assert draft.ok
    with atomic(session):
        if policy is not None:
            _lock(session, policy)
        before = snapshot(policy) if policy is not None else None
        if policy is None:
            policy = Policy(catalogue_id=catalogue.id, **draft.values,
                            kinds=[RequestKind(**kind) for kind in draft.kinds])
            session.add(policy)
            session.flush()
            done = "created"
        else:
            values = {name: value for name, value in draft.values.items() if name != "slug"}
            policy, done = versions.revise_policy(session, policy, values, draft.kinds, now)
        _record(actor, "policy", done, policy, before, session)
    return policy, done


def _lock(session: Session, row: Pack | Policy) -> None:
    """Read the row again under a lock (PostgreSQL): of two admins saving the
    same pack at once, the second sees the version the first made and is
    told to edit it, instead of making a second version 2."""
    session.refresh(row, with_for_update=True)
    if row.superseded_at is not None:
        raise EditorError(SUPERSEDED)


def _record(actor: User | None, kind: str, done: str, row: Policy | Pack, before: dict[str, Any] | None,
            session: Session) -> None:
    """The audit entry of a save: pack.create, pack.update or pack.version (before is the older version)."""
    if done != "unchanged":
        action = {"created": "create", "updated": "update", "versioned": "version"}[done]
        audit.record(actor, f"{kind}.{action}", kind, row.id, before=before, after=snapshot(row), session=session)


def policy_form(policy: Policy, currency: str) -> dict[str, str]:
    """A policy as its form shows it."""
    form = {"slug": policy.slug, "unit": policy.unit, "unit_minutes": str(policy.unit_minutes),
            "step": str(policy.step), "default_kind": policy.default_kind or "",
            "overage_mode": policy.overage_mode,
            "overage_hourly_rate": format_amount(policy.overage_hourly_rate, currency),
            "low_balance_percent": str(policy.low_balance_percent)}
    form.update({f"name-{lang}": text for lang, text in policy.name.items()})
    for row, kind in enumerate(policy.kinds):
        prefix = f"kind-{row}-"
        form.update({prefix + "slug": kind.slug, prefix + "minimum": str(kind.minimum),
                     prefix + "fixed": "" if kind.fixed is None else str(kind.fixed)})
        form.update({f"{prefix}name-{lang}": text for lang, text in kind.name.items()})
        if not kind.billable:
            form[prefix + "free"] = "y"
    return form


# --- Packs --------------------------------------------------------------------

def current_policies(session: Session, catalogue: Catalogue) -> list[Policy]:
    return list(session.scalars(select(Policy).where(Policy.catalogue_id == catalogue.id,
                                                     Policy.superseded_at.is_(None)).order_by(Policy.id)))


def pack_draft(session: Session, form: Form, catalogue: Catalogue, pack: Pack | None) -> Draft:
    draft = Draft()
    currency = catalogue.currency
    name = _translated(draft, form, "name")
    slug = _slug(draft, session, form, f"{catalogue.slug}-", name.get("en", ""),
                 pack.slug if pack is not None else None)
    policies = {policy.slug: policy for policy in current_policies(session, catalogue)}
    policy = _choice(draft, form, "policy", list(policies))
    kind = _choice(draft, form, "kind", PACK_KINDS)
    unlimited = _flag(form, "unlimited")
    quantity = _whole(draft, form, "quantity", 0, 1_000_000, example=36)
    if quantity is not None and "quantity" not in draft.errors and unlimited != (quantity == 0):
        draft.fail("quantity", UNLIMITED)
    price = _amount(draft, form, "price", currency)
    if kind == "trial" and price != 0 and "price" not in draft.errors:
        draft.fail("price", TRIAL_FREE)
    vat_rate_bp = 0
    if _get(form, "vat_rate"):
        try:
            vat_rate_bp = parse_rate(_get(form, "vat_rate"))
        except ValueError as error:
            draft.fail("vat_rate", str(error))
    draft.values.update(
        slug=slug,
        kind=kind,
        policy=policy,
        name=name,
        description=_translated(draft, form, "description", MAX_TEXT, one_line=False),
        quantity=quantity,
        unlimited=unlimited,
        price=price,
        vat_rate_bp=vat_rate_bp,
        price_includes_vat=_flag(form, "price_includes_vat"),
        hourly_rate=_amount(draft, form, "hourly_rate", currency),
        validity_months=_whole(draft, form, "validity_months", 1, 240, required=False, example=12),
        pooled=_flag(form, "pooled"),
        min_quantity=_whole(draft, form, "min_quantity", 1, 10_000, required=False, example=20) or 1,
        registration_first=_flag(form, "registration_first"),
        topups_never_expire=_flag(form, "topups_never_expire"),
        rollover_expired=_flag(form, "rollover_expired"),
        commitment_months=_whole(draft, form, "commitment_months", 1, 240, required=False),
        billing_period_months=_whole(draft, form, "billing_period_months", 1, 240, required=False),
        resubscribe_after_months=_whole(draft, form, "resubscribe_after_months", 1, 240, required=False, example=3),
        refundable=_flag(form, "refundable"),
        included=_items(draft, form, "included"),
        excluded=_items(draft, form, "excluded"),
    )
    position = _whole(draft, form, "position", 0, 1000, required=False, example=1)
    if draft.ok:
        _guard(draft, lambda: offers.check_pack(draft.values))
    draft.values["position"] = position or 0
    return draft


def _pack_columns(session: Session, catalogue: Catalogue, draft: Draft) -> dict[str, Any]:
    values = {name: value for name, value in draft.values.items() if name != "policy"}
    policy = versions.current_policy(session, draft.values["policy"])
    assert policy is not None and policy.catalogue_id == catalogue.id
    return {**values, "policy_id": policy.id, "currency": catalogue.currency}


def save_pack(session: Session, catalogue: Catalogue, pack: Pack | None, draft: Draft,
              now: datetime, actor: User | None) -> tuple[Pack, str]:
    """Create a pack (a draft, off sale until published), or revise one (a new
    version when it was sold)."""
    assert draft.ok
    with atomic(session):
        if pack is not None:
            _lock(session, pack)
        before = snapshot(pack) if pack is not None else None
        columns = _pack_columns(session, catalogue, draft)
        if pack is None:
            pack = Pack(catalogue_id=catalogue.id, retired_at=now, published_at=None, **columns)
            session.add(pack)
            session.flush()
            done = "created"
        else:
            columns.pop("slug")
            pack, done = versions.revise_pack(session, pack, columns, now)
        _record(actor, "pack", done, pack, before, session)
    return pack, done


def preview_pack(session: Session, catalogue: Catalogue, draft: Draft, pack: Pack | None) -> Pack | None:
    """A pack as the form describes it, never added to the session: what the
    storefront card and the charge preview show while editing."""
    values = draft.values
    if any(values.get(name) is None for name in ("kind", "policy", "quantity")):
        return None
    policy = versions.current_policy(session, values["policy"])
    if policy is None:
        return None
    columns = {name: value for name, value in values.items() if name != "policy" and value is not None}
    transient = Pack(**{**columns, "slug": values.get("slug") or (pack.slug if pack else "preview")},
                     currency=catalogue.currency)
    set_committed_value(transient, "policy", policy)
    set_committed_value(transient, "catalogue", catalogue)
    return transient


def pack_form(pack: Pack) -> dict[str, str]:
    """A pack as its form shows it."""
    currency = pack.currency
    form = {"slug": pack.slug, "kind": pack.kind, "policy": pack.policy.slug, "quantity": str(pack.quantity),
            "price": format_amount(pack.price, currency), "vat_rate": format_rate(pack.vat_rate_bp),
            "hourly_rate": format_amount(pack.hourly_rate, currency), "min_quantity": str(pack.min_quantity),
            "position": str(pack.position)}
    for name in ("validity_months", "commitment_months", "billing_period_months", "resubscribe_after_months"):
        value = getattr(pack, name)
        form[name] = "" if value is None else str(value)
    for name in ("unlimited", "price_includes_vat", "pooled", "registration_first", "topups_never_expire",
                 "rollover_expired", "refundable"):
        if getattr(pack, name):
            form[name] = "y"
    for name in ("name", "description"):
        form.update({f"{name}-{lang}": text for lang, text in getattr(pack, name).items()})
    for name in ("included", "excluded"):
        form.update({f"{name}-{lang}": "\n".join(items) for lang, items in (getattr(pack, name) or {}).items()})
    return form


def new_pack_form(catalogue: Catalogue, policies: list[Policy]) -> dict[str, str]:
    return {"kind": "pack", "policy": policies[0].slug if policies else "", "refundable": "y",
            "min_quantity": "1", "position": "0"}


def publish(session: Session, pack: Pack, now: datetime, actor: User | None) -> None:
    """Put a draft or a retired pack on sale (publish and restore are one act)."""
    if pack.superseded_at is not None:
        raise EditorError(SUPERSEDED)
    if pack.status == "on_sale":
        raise EditorError(NOT_OFF_SALE)
    with atomic(session):
        before = {"status": pack.status}
        pack.retired_at = None
        pack.published_at = pack.published_at or now
        audit.record(actor, "pack.publish" if before["status"] == "draft" else "pack.restore", "pack", pack.id,
                     before=before, after={"status": pack.status}, session=session)


def retire(session: Session, pack: Pack, now: datetime, actor: User | None) -> None:
    """Take a pack off sale; what was sold stays as it was."""
    if pack.status != "on_sale":
        raise EditorError(NOT_ON_SALE)
    with atomic(session):
        pack.retired_at = now
        audit.record(actor, "pack.retire", "pack", pack.id, before={"status": "on_sale"},
                     after={"status": pack.status}, session=session)


def snapshot(row: Catalogue | Policy | Pack) -> dict[str, Any]:
    """The row's columns as JSON values, for the audit log's before and after."""
    values: dict[str, Any] = {}
    for attr in row.__mapper__.column_attrs:
        value = getattr(row, attr.key)
        values[attr.key] = value.isoformat() if isinstance(value, datetime) else value
    if isinstance(row, Policy):
        values["kinds"] = [{"slug": k.slug, "name": k.name, "minimum": k.minimum, "fixed": k.fixed,
                            "billable": k.billable} for k in row.kinds]
    return values


# --- Export -------------------------------------------------------------------

def _without_defaults(values: dict[str, Any], spec: offers.Spec) -> dict[str, Any]:
    return {name: value for name, value in values.items()
            if value is not None and (spec[name][1] is offers.REQUIRED or value != spec[name][1])}


def export_preset(session: Session, catalogue: Catalogue) -> str:
    """The catalogue as it is sold now, as a preset file: its current
    policies and its packs on sale, in order. Loading it gives the same
    catalogue back (tests/test_catalogue_editor.py loads every preset, exports
    it and compares)."""
    names = catalogue.name
    head: dict[str, Any] = {
        "name": names["en"] if len(set(names.values())) == 1 and set(names) == set(LANGUAGES) else dict(names),
        "currency": catalogue.currency,
        "language": catalogue.language,
        "position": catalogue.position,
        "tagline": dict(catalogue.tagline),
        "publishes_service_levels": catalogue.publishes_service_levels,
    }
    document: dict[str, Any] = {"catalogue": _without_defaults(head, offers.CATALOGUE_FIELDS)}
    policies = current_policies(session, catalogue)
    tables: list[dict[str, Any]] = []
    document["policies"] = tables
    for policy in policies:
        values = {name: getattr(policy, name) for name in offers.POLICY_FIELDS}
        table = _without_defaults(values, offers.POLICY_FIELDS)
        kinds = [_without_defaults({name: getattr(kind, name) for name in offers.KIND_FIELDS}, offers.KIND_FIELDS)
                 for kind in policy.kinds]
        if kinds:
            table["kinds"] = kinds
        tables.append(table)
    packs = list(session.scalars(
        select(Pack).where(Pack.catalogue_id == catalogue.id, Pack.retired_at.is_(None),
                           Pack.superseded_at.is_(None)).order_by(Pack.position, Pack.id)))
    rows = []
    for pack in packs:
        row = {name: getattr(pack, name) for name in offers.PACK_FIELDS if name != "policy"}
        row["policy"] = pack.policy.slug
        rows.append(row)
    # What every pack says alike is said once, in [pack_defaults].
    defaults = {}
    if len(rows) > 1:
        for name in sorted(offers.DEFAULTABLE):
            alike = [row[name] for row in rows]
            if all(value == alike[0] for value in alike) and alike[0] is not None \
                    and alike[0] != offers.PACK_FIELDS[name][1]:
                defaults[name] = alike[0]
    if defaults:
        document["pack_defaults"] = {name: defaults[name] for name in offers.PACK_FIELDS if name in defaults}
    document["packs"] = [
        _without_defaults({name: value for name, value in row.items() if name not in defaults}, offers.PACK_FIELDS)
        for row in rows]
    if not document["policies"]:
        del document["policies"]
    header = (f"# {catalogue.slug}: exported from Forfait's catalogue editor. Load it with\n"
              f"# `flask catalogue load` (as presets/{catalogue.slug}.toml) or the editor's import.\n\n")
    return header + tomli_w.dumps(document, multiline_strings=False)


def import_preset(session: Session, text: str | None, name: str, actor: User | None) -> offers.LoadReport:
    """Load an uploaded preset file named ``name``.toml, or (``text`` None)
    the preset of that name shipped with Forfait: versioned like any edit,
    and written to the audit log with what changed."""
    try:
        preset = offers.parse_preset(text, name) if text is not None else offers.read_preset(name)
        with atomic(session):
            report = offers.load(session, preset)
            catalogue_id = session.scalar(select(Catalogue.id).where(Catalogue.slug == report.catalogue))
            audit.record(actor, "catalogue.import", "catalogue", catalogue_id, before=None,
                         after={"preset": preset.file, "changes": [f"{action} {row}" for action, row in
                                                                  report.changes if action != "unchanged"]},
                         session=session)
        return report
    except offers.CatalogueError as error:
        raise EditorError(PRESET_REFUSED, "file", reason=str(error)) from None
