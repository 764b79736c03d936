"""What every table stands on: the declarative base with its naming
convention, the per-language text type, and the registry of every model
module (importing this one registers all tables, for migrations and
create_all). The tables themselves live with what they hold:
billing.catalogue.models, billing.accounts.models, billing.orders.models,
billing.ledger.models, billing.desk.models, billing.subscriptions.models,
billing.audit.models.
SQLAlchemy only: no Flask here, so services and the command line can use
them with any session."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, registry

if TYPE_CHECKING:
    pass

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



# The largest value an INTEGER column holds (32 bits on PostgreSQL): no id,
# quantity or amount in minor units beyond it can name a row or be recorded.
MAX_INTEGER = 2**31 - 1


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


def within(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's text: ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def localized(text: Translated | None, locale: str, fallback: str = "en") -> Any:
    """The text in ``locale``, else the fallback language, else any."""
    if not text:
        return ""
    for lang in (locale, locale.split("_")[0], fallback):
        if lang in text:
            return text[lang]
    return next(iter(text.values()))


# Every table registers on import: the registry is whole once this module is.
from billing.accounts import models as account_models  # noqa: E402,F401
from billing.audit import models as audit_models  # noqa: E402,F401
from billing.bank import models as bank_models  # noqa: E402,F401
from billing.catalogue import models as catalogue_models  # noqa: E402,F401
from billing.desk import models as desk_models  # noqa: E402,F401
from billing.ledger import models as ledger_models  # noqa: E402,F401
from billing.orders import models as order_models  # noqa: E402,F401
from billing.quotes import models as quote_models  # noqa: E402,F401
from billing.service import models as service_models  # noqa: E402,F401
from billing.subscriptions import models as subscription_models  # noqa: E402,F401
