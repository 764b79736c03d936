"""Helpers the ledger tests share: one app per module, people, packs of the
seed presets, a clock.

Most ledger tests only read and write their own account, so a module shares
one database (per engine) and each test makes a new account. A test that must see the
whole database (verify, the expiry job) uses conftest's ``app`` instead."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_app
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Lot
from billing.ledger.verify import verify
from billing.orders import overage_bills
from billing.transaction import atomic
from common.extensions import db

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_serial = itertools.count(1)


# Run a test on both engines: @both above it.
both = pytest.mark.parametrize("ledger_app", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
def ledger_app(request, tmp_path_factory, databases) -> Iterator[Flask]:
    """The app on a database shared by the module's tests: SQLite unless
    parametrised (``@both``)."""
    engine = getattr(request, "param", "sqlite")
    folder = tmp_path_factory.mktemp("ledger")
    url = databases.postgresql() if engine == "postgresql" else databases.sqlite(folder, "ledger.sqlite")
    app = make_app(url, folder)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


@pytest.fixture
def session(ledger_app):
    with ledger_app.app_context():
        yield db.session
        db.session.remove()


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_serial)}"


def pack(session: Session, slug: str) -> Pack:
    found = session.scalar(select(Pack).where(Pack.slug == slug))
    if found is None:
        load_preset(session, slug.split("-")[0])
        found = session.scalar(select(Pack).where(Pack.slug == slug))
    assert found is not None, slug
    return found


@pytest.fixture
def toopixel_allows_overage(session):
    """Too Pixel's policy under ``allow``, for one test of the shared database."""
    policy = pack(session, "toopixel-36").policy
    policy.overage_mode = "allow"
    session.commit()
    yield
    policy.overage_mode = "block"
    session.commit()


def person(session: Session, account: Account | None, role: str | None = "owner", staff: bool = False) -> User:
    n = next(_serial)
    user = User(account=account, email=f"user{n}@example.com", name=f"User {n}", password_hash="-",
                role=role if account is not None else ("admin" if staff else None), is_staff=staff)
    session.add(user)
    session.commit()
    return user


def new_client(session: Session, name: str = "Acme") -> tuple[Account, User]:
    """A new account and its owner."""
    account = Account(name=f"{name} {next(_serial)}", country="FR")
    session.add(account)
    owner = person(session, account)
    return account, owner


def staff(session: Session) -> User:
    return person(session, None, staff=True)


def buy(session: Session, account: Account, slug: str, now: datetime = NOW, **options) -> Lot:
    op = ledger.grant(session, account, pack(session, slug), key=key("grant"), now=now, **options)
    assert op.lot is not None
    return op.lot


def ticket(session: Session, account: Account, user: User, slug: str | None = None, kind: str | None = None,
           now: datetime = NOW) -> Ticket:
    policy = pack(session, slug).policy if slug else None
    return ledger.open_ticket(session, account, user, "Help", now=now, kind=kind, policy=policy)


def charge(session: Session, ticket: Ticket, minutes: int, by: User | None = None, now: datetime = NOW,
           key_: str | None = None):
    """The ticket's billable total becomes ``minutes``, and the bills of the
    overages a correction cut follow, in one unit of work, as billing.desk.log_time does."""
    with atomic(session):
        op = ledger.charge_ticket_to(session, ticket, minutes, by=by, key=key("charge") if key_ is None else key_,
                                     now=now)
        overage_bills.follow_correction(session, op, now)
    return op


def held(session: Session, account: Account, slug: str, now: datetime = NOW) -> int:
    """What the account holds on the balance of pack ``slug``, net of debt."""
    policy = pack(session, slug).policy
    return ledger.balance(session, account.id, policy.id, policy.unit, now=now).net


def days(n: int) -> timedelta:
    return timedelta(days=n)


def assert_verified(session: Session, account: Account) -> None:
    report = verify(session, account.id)
    assert report.breaches == [], report.breaches


def two_months(session: Session) -> Account:
    """Too Pixel: 36 credits on 5 January, 27 min in January, 60 min and a
    goodwill adjustment in February."""
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 27, now=NOW + days(5))
    february = NOW + days(30)
    charge(session, ticket(session, account, owner), 60, now=february)
    ledger.adjust(session, account, pack(session, "toopixel-36").policy, 2, reason="goodwill",
                  by=staff(session), key=key(), now=february + days(1))
    return account
