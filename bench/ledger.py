"""How the ledger's reads and writes scale with an account's history.

    python -m bench.ledger            (from the repository root)

Builds, on SQLite and on PostgreSQL (TEST_DATABASE_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/test; the script creates and
drops its own database there), a database of 10,000 accounts: one with
1,000 lots and 100,000 entries, the others with one lot and 10 entries each.
Then it times a balance read, a charge and a month's statement on the big
account and on a small one, and prints each as a multiple of a ``SELECT 1``
round trip measured in the same run, so that figures compare across
machines: balance read and charge must stay in the same order whatever the
history; a statement reads the entries of its period.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Operation
from billing.ledger.statement import statement
from billing.models import Base

ACCOUNTS = 10_000
BIG_LOTS = 1_000
BIG_ENTRIES = 100_000
SMALL_ENTRIES = 10
START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=BIG_LOTS + 30)
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def postgresql() -> Iterator[str]:
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"forfait_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'bench.sqlite'}"


def populate(engine: sa.Engine) -> tuple[int, int, int, int]:
    """The accounts, lots, tickets, operations and entries, inserted in bulk.
    Returns (big account, small account, policy, pack) ids."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        load_preset(session, "toopixel")
        toopixel = session.scalar(sa.select(Pack).where(Pack.slug == "toopixel-36"))
        policy_id, pack_id = toopixel.policy_id, toopixel.id
    tables = {model: [] for model in (Account, User, Lot, Ticket, Operation, Entry)}
    ids = {model: 0 for model in tables}

    def add(model: type, **row) -> int:
        ids[model] += 1
        tables[model].append({"id": ids[model], **row})
        return ids[model]

    def lot(account: int, created: datetime, granted: int, drawn: int) -> int:
        return add(Lot, account_id=account, policy_id=policy_id, unit="credit", source="purchase", pack_id=pack_id,
                   order_id=None, owner_id=None, granted=granted, remaining=granted - drawn,
                   expires_at=created + timedelta(days=730), rolled_over=0, created_at=created)

    def entry(account: int, lot_id: int, kind: str, quantity: int, at: datetime, ticket: int | None = None) -> None:
        op = add(Operation, key=f"op-{ids[Operation] + 1}", kind="grant" if kind == "grant" else "charge",
                 account_id=account, ticket_id=ticket, order_id=None, by_id=None, note="", created_at=at)
        add(Entry, operation_id=op, account_id=account, lot_id=lot_id, ticket_id=ticket, kind=kind,
            quantity=quantity, effective_at=at, idempotency_key=f"op-{op}:1")

    def ticket(account: int, user: int, units: int, at: datetime) -> int:
        return add(Ticket, account_id=account, opened_by_id=user, policy_id=policy_id, unit="credit", kind=None,
                   subject="Help", status="closed", billable_minutes=units * 10, units_charged=units, created_at=at)

    for n in range(ACCOUNTS):
        account = add(Account, name=f"Client {n}", country="FR", created_at=START)
        user = add(User, account_id=account, email=f"owner{n}@example.com", name=f"Owner {n}", password_hash="-",
                   language="en", role="owner", is_staff=False, email_verified_at=None, created_at=START)
        if n == 0:
            # One lot a day; each gives 99 units, one at a time, to tickets of 10 units.
            per_lot = (BIG_ENTRIES - BIG_LOTS) // BIG_LOTS
            work = None
            for day in range(BIG_LOTS):
                created = START + timedelta(days=day)
                lot_id = lot(account, created, per_lot + 1, per_lot)
                entry(account, lot_id, "grant", per_lot + 1, created)
                for hour in range(per_lot):
                    if (day * per_lot + hour) % 10 == 0:
                        work = ticket(account, user, 10, created)
                    entry(account, lot_id, "consume", -1, created + timedelta(minutes=10 * hour), work)
        else:
            created = NOW - timedelta(days=n % 300)
            lot_id = lot(account, created, 1000, SMALL_ENTRIES - 1)
            entry(account, lot_id, "grant", 1000, created)
            work = ticket(account, user, SMALL_ENTRIES - 1, created)
            for hour in range(SMALL_ENTRIES - 1):
                entry(account, lot_id, "consume", -1, created + timedelta(hours=hour), work)
    with engine.begin() as conn:
        for model, rows in tables.items():
            for chunk in range(0, len(rows), 20_000):
                conn.execute(sa.insert(model), rows[chunk:chunk + 20_000])
        if engine.dialect.name == "postgresql":
            for model in tables:
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{model.__tablename__}', 'id'), {ids[model]})")
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    return 1, 2, policy_id, pack_id


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(engine: sa.Engine, account_id: int) -> dict[str, float]:
    with Session(engine) as session:
        account = session.get(Account, account_id)
        owner = session.scalar(sa.select(User).where(User.account_id == account_id))
        tickets = [ledger.open_ticket(session, account, owner, "Bench", now=NOW).id for _ in range(100)]
        round_trip = median_seconds(lambda: session.execute(sa.text("SELECT 1")).scalar(), 500)
        session.commit()
        balance = median_seconds(lambda: ledger.balances(session, account_id, now=NOW), 200)
        session.commit()
        pending = iter(tickets)

        def charge() -> None:
            work = session.get(Ticket, next(pending))
            ledger.charge_ticket_to(session, work, 10, by=None, key=f"bench-{uuid.uuid4().hex}", now=NOW)

        charged = median_seconds(charge, len(tickets))
        last_month = (NOW - timedelta(days=60)).date().replace(day=1)
        month = (last_month, (last_month + timedelta(days=32)).replace(day=1) - timedelta(days=1))
        report = median_seconds(lambda: statement(session, account, *month, now=NOW), 20)
        session.commit()
    return {"SELECT 1": round_trip, "balance read": balance, "charge": charged, "statement (month)": report}


def run(name: str, url: str) -> None:
    engine = sa.create_engine(url)
    began = time.perf_counter()
    big, small, _, _ = populate(engine)
    print(f"\n{name}: {ACCOUNTS} accounts, {BIG_ENTRIES} entries on the big one, "
          f"built in {time.perf_counter() - began:.1f} s")
    results = {"100,000 entries": measure(engine, big), f"{SMALL_ENTRIES} entries": measure(engine, small)}
    print(f"{'':20}" + "".join(f"{label:>30}" for label in results))
    for action in results["100,000 entries"]:
        cells = []
        for figures in results.values():
            seconds = figures[action]
            cells.append(f"{seconds * 1000:9.3f} ms {seconds / figures['SELECT 1']:8.1f} × RTT")
        print(f"{action:20}" + "".join(f"{cell:>30}" for cell in cells))
    engine.dispose()


def main() -> int:
    with sqlite() as url:
        run("SQLite", url)
    try:
        with postgresql() as url:
            run("PostgreSQL", url)
    except sa.exc.OperationalError as error:
        print(f"\nPostgreSQL: not reachable at {PG_URL}: {error.orig}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
