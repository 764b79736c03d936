"""Helpers the checkout tests share: a clock, people, placed orders; packs come from ledger_support."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from ledger_support import pack  # noqa: F401 - the tests import it from here
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from billing.orders import services as orders
from billing.orders.invoices import Seller
from billing.orders.models import Order, Payment
from common.extensions import db

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EUR_IBAN = "FR7630006000011234567890189"
QR_IBAN = "CH4431999123000889012"
SELLER = Seller("Forfait Demo Support", "12 rue des Exemples\n75011 Paris\nFrance", "support@forfait.example",
                "FR40123456789")
_serial = itertools.count(1)

# Run a test on both engines: @both above it (the app fixture's database_url).
both = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session


def person(session: Session, account: Account | None = None, *, staff: bool = False, verified: bool = True) -> User:
    n = next(_serial)
    user = User(account=account, email=f"person{n}@example.com", name=f"Person {n}", password_hash="-",
                role="owner" if account is not None else ("admin" if staff else None), is_staff=staff,
                email_verified_at=NOW if verified else None)
    session.add(user)
    session.commit()
    return user


def client(session: Session, name: str = "Acme") -> tuple[Account, User]:
    """A new account and its owner."""
    account = Account(name=f"{name} {next(_serial)}", country="FR")
    session.add(account)
    return account, person(session, account)


def staff(session: Session) -> User:
    return person(session, staff=True)


def place(session: Session, owner: User, slug: str = "demo-hours-5", *, quantity: int = 1,
          method: str = "transfer", iban: str = EUR_IBAN) -> tuple[Order, Payment]:
    order, payment = orders.place_order(session, owner.account, pack(session, slug), quantity=quantity,
                                        method=method, methods=("transfer", "cheque", "card"), by=owner, now=NOW,
                                        iban=iban)
    orders.await_payment(session, payment, now=NOW)
    return order, payment


def confirm(session: Session, payment: Payment, **options) -> orders.Outcome:
    options.setdefault("now", NOW)
    return orders.confirm_payment(session, payment, seller=SELLER, **options)
