"""Terms already sold never change: versions of policies and packs.

A lot, a ticket, an order or a subscription points at the policy or pack row
it was sold (or opened) under. Changing that row would change what was sold:
the charge of a ticket, the validity or the refund of a pack. So a change of
terms on a row anything points at supersedes it instead: the row keeps its
id and its terms, is marked ``superseded_at`` (and, for a pack, off sale),
and a new row with the same slug and the next ``version`` takes its place in
the catalogue. A row nothing points at yet is simply updated.

What is not a term (a pack's place in the list, whether it is on sale, a
policy's display name or its low-balance warning) changes in place on the
current version, never making a new one: renaming a policy must not split a
client's balance in two.

Every function here works inside the caller's unit of work
(``billing.transaction.atomic``) and only flushes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, inspect, select
from sqlalchemy.orm import Session

from billing.catalogue.models import Catalogue, Pack, Policy, RequestKind
from billing.models import Base

# Changed on the current version in place: none of them alters what was sold.
PACK_NOT_TERMS = frozenset({"position", "retired_at", "published_at"})
POLICY_NOT_TERMS = frozenset({"name", "low_balance_percent", "default_kind"})
KIND_TERMS = ("slug", "minimum", "fixed", "billable")
KIND_COLUMNS = (*KIND_TERMS, "name", "position")


def in_use(session: Session, row: Catalogue | Policy | Pack, *, besides: tuple[type[Base], ...] = ()) -> bool:
    """Whether any row of another table points at ``row``: orders, lots,
    tickets, and whatever later tables refer to it, without listing them here."""
    target = row.__table__
    row_id = row.id
    skipped = {model.__table__ for model in besides}
    for table in Base.metadata.tables.values():
        if table in skipped:
            continue
        for key in table.foreign_keys:
            if key.column.table is target and session.scalar(select(exists().where(key.parent == row_id))):
                return True
    return False


def policy_in_use(session: Session, policy: Policy) -> bool:
    """A lot or a ticket points at it, or a pack that was sold (a pending
    order will be granted under the policy its pack names)."""
    if in_use(session, policy, besides=(RequestKind, Pack)):
        return True
    packs = session.scalars(select(Pack).where(Pack.policy_id == policy.id))
    return any(in_use(session, pack) for pack in packs)


def current_policy(session: Session, slug: str) -> Policy | None:
    return session.scalar(select(Policy).where(Policy.slug == slug, Policy.superseded_at.is_(None)))


def current_pack(session: Session, slug: str) -> Pack | None:
    return session.scalar(select(Pack).where(Pack.slug == slug, Pack.superseded_at.is_(None)))


def _differs(row: Base, values: dict[str, Any]) -> set[str]:
    return {name for name, value in values.items() if getattr(row, name) != value}


def _kinds(policy: Policy) -> list[dict[str, Any]]:
    return [{name: getattr(kind, name) for name in KIND_COLUMNS} for kind in policy.kinds]


def _terms(kinds: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(kind[name] for name in KIND_TERMS) for kind in kinds]


def _sync_kinds(policy: Policy, kinds: list[dict[str, Any]]) -> None:
    existing = {kind.slug: kind for kind in policy.kinds}
    wanted = []
    for values in kinds:
        kind = existing.pop(values["slug"], None) or RequestKind()
        for name, value in values.items():
            if getattr(kind, name) != value:
                setattr(kind, name, value)
        wanted.append(kind)
    if existing or [kind.slug for kind in policy.kinds] != [kind.slug for kind in wanted]:
        policy.kinds = wanted  # kinds left out go with the collection (delete-orphan)


def revise_policy(session: Session, policy: Policy, values: dict[str, Any], kinds: list[dict[str, Any]],
                  now: datetime) -> tuple[Policy, str]:
    """Give ``policy`` these column ``values`` and request ``kinds`` (each a
    dict of KIND_COLUMNS, in order). Returns the current version and what
    happened: "unchanged", "updated" (in place) or "versioned"."""
    changed = _differs(policy, values)
    old_kinds = _kinds(policy)
    kinds_changed = old_kinds != kinds
    if not changed and not kinds_changed:
        return policy, "unchanged"
    terms_changed = bool(changed - POLICY_NOT_TERMS) or _terms(old_kinds) != _terms(kinds)
    if not terms_changed or not policy_in_use(session, policy):
        for name in changed:
            setattr(policy, name, values[name])
        _sync_kinds(policy, kinds)
        return policy, "updated"
    columns = {attr.key: getattr(policy, attr.key) for attr in inspect(Policy).column_attrs
               if attr.key not in ("id", "version", "superseded_at")}
    policy.superseded_at = now
    session.flush()
    newer = Policy(**{**columns, **values}, version=policy.version + 1,
                   kinds=[RequestKind(**kind) for kind in kinds])
    session.add(newer)
    session.flush()
    # The catalogue's current packs sell the new terms from now on; a pack
    # already sold under the old ones becomes a version of its own.
    for pack in list(session.scalars(select(Pack).where(Pack.policy_id == policy.id,
                                                        Pack.superseded_at.is_(None)))):
        revise_pack(session, pack, {"policy_id": newer.id}, now)
    return newer, "versioned"


def revise_pack(session: Session, pack: Pack, values: dict[str, Any], now: datetime) -> tuple[Pack, str]:
    """Give ``pack`` these column values (``policy_id``, not ``policy``).
    Returns the current version and "unchanged", "updated" or "versioned"."""
    changed = _differs(pack, values)
    if not changed:
        return pack, "unchanged"
    if not (changed - PACK_NOT_TERMS) or not in_use(session, pack):
        for name in changed:
            setattr(pack, name, values[name])
        if "policy_id" in changed:
            session.flush()
            session.expire(pack, ["policy"])
        return pack, "updated"
    columns = {attr.key: getattr(pack, attr.key) for attr in inspect(Pack).column_attrs
               if attr.key not in ("id", "version", "superseded_at")}
    pack.superseded_at = now
    if pack.retired_at is None:
        pack.retired_at = now
    session.flush()
    newer = Pack(**{**columns, **values}, version=pack.version + 1)
    session.add(newer)
    session.flush()
    return newer, "versioned"
