"""The CSV column mappings staff choose once per bank, edit and delete,
each change written to the audit log. An import keeps what it read, not
the mapping it read it with: deleting a mapping leaves past imports whole."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.bank.models import BankMapping
from billing.bank.statements import Mapping
from billing.errors import N_, BillingError
from billing.transaction import atomic

if TYPE_CHECKING:
    from billing.accounts.models import User

COLUMNS = ("date_column", "amount_column", "credit_column", "debit_column", "currency_column", "text_column",
           "payer_column", "reference_column", "bank_ref_column")


class MappingError(BillingError):
    """A mapping that cannot read a statement."""


def all_mappings(session: Session) -> list[BankMapping]:
    return list(session.scalars(select(BankMapping).order_by(BankMapping.name)))


def check(mapping: Mapping) -> Mapping:
    """``mapping`` with its texts trimmed, or MappingError naming the field."""
    values = {field.name: getattr(mapping, field.name) for field in fields(Mapping)}
    for key, value in values.items():
        if isinstance(value, str) and key != "delimiter":
            values[key] = " ".join(value.split())
    if not values["name"]:
        raise MappingError(N_("Name the bank this mapping reads."), "name")
    if values["delimiter"] not in (";", ",", "\t", "|"):
        raise MappingError(N_("The separator is a semicolon, a comma, a tab or a vertical bar."), "delimiter")
    if not values["date_column"]:
        raise MappingError(N_("Name the column that holds the date."), "date_column")
    try:
        sample = date(2026, 12, 31).strftime(values["date_format"])
        parsed = datetime.strptime(sample, values["date_format"]).date()
    except ValueError:
        parsed = None
    if "%" not in values["date_format"] or parsed != date(2026, 12, 31):
        raise MappingError(N_("Write the date format with %(day)s, %(month)s and %(year)s, such as %(example)s."),
                           "date_format", day="%d", month="%m", year="%Y", example="%d.%m.%Y")
    if not values["amount_column"] and not (values["credit_column"] and values["debit_column"]):
        raise MappingError(N_("Name the column of the amount, or the two columns of credits and debits."),
                           "amount_column")
    values["currency"] = values["currency"].upper()
    if not re.fullmatch(r"[A-Z]{3}", values["currency"]):
        raise MappingError(N_("The currency is a three-letter ISO code, such as EUR."), "currency")
    if not values["text_column"]:
        raise MappingError(N_("Name the column that holds the payer's text."), "text_column")
    return Mapping(**values)


def _saved(row: BankMapping) -> dict[str, Any]:
    return {field.name: getattr(row, field.name) for field in fields(Mapping)}


def save(session: Session, mapping: Mapping, *, now: datetime, by: User | None,
         mapping_id: int | None = None) -> BankMapping:
    """Create a mapping, or change the one ``mapping_id`` names (``by`` None: the command line)."""
    mapping = check(mapping)
    with atomic(session):
        taken = session.scalar(select(BankMapping).where(BankMapping.name == mapping.name))
        if taken is not None and taken.id != mapping_id:
            raise MappingError(N_("A mapping named %(name)s exists already."), "name", name=mapping.name)
        row = session.get(BankMapping, mapping_id) if mapping_id is not None else None
        if row is None:
            if mapping_id is not None:
                raise MappingError(N_("There is no such mapping."))
            row = BankMapping(updated_at=now)
            session.add(row)
            before = None
        else:
            before = _saved(row)
        for field in fields(Mapping):
            setattr(row, field.name, getattr(mapping, field.name))
        row.updated_at = now
        session.flush()
        after = _saved(row)
        if before is None:
            audit.record(by, "bank.mapping.create", "bank_mapping", row.id, after=after, session=session)
        elif before != after:
            # Only what changed: a rename reads as one line in the log, not fourteen.
            changed = [key for key in after if before[key] != after[key]]
            audit.record(by, "bank.mapping.update", "bank_mapping", row.id, before={k: before[k] for k in changed},
                         after={k: after[k] for k in changed}, session=session)
        return row


def delete(session: Session, mapping_id: int, *, by: User | None) -> str:
    """Forget a mapping, and say its name; the imports it read keep their lines (they never point at it)."""
    with atomic(session):
        row = session.get(BankMapping, mapping_id)
        if row is None:
            raise MappingError(N_("There is no such mapping."))
        audit.record(by, "bank.mapping.delete", "bank_mapping", row.id, before=_saved(row), session=session)
        session.delete(row)
        return row.name
