"""What a page of the staff's client list costs with 10,000 accounts.

    python -m bench.clients [runs per case]

Builds the real app on SQLite in a temporary folder (every migration run),
then inserts in bulk 10,000 accounts, each with one to three people, two to
four lots on two catalogues (credits and tickets; some used up, some expired,
some never expiring), their ledger operations and entries (about 20 an
account), three tickets, an order with its payment reference, and here and
there a debt or an overage request awaiting the owner.

Then a staff member's browser (the Flask test client, logged in) asks for
the list sorted each way, the 100th page, and a few searches, and the script
prints the median time of each page and its ratio to two baselines measured
in the same run: a bare Flask route (the framework's own cost) and the staff
home page (a page with the session, the login check and a template). The
figure to hold is the absolute one on SQLite: under 200 ms a page. The
CPU time of each page (the test client, the app and SQLite run in this one
process) says what a page costs when other processes share the cores.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

# billing.models first: it ends by importing billing.audit, which needs billing.accounts.models whole.
import billing.models  # noqa: F401
from app import create_app
from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk.models import Ticket
from billing.ledger.models import Entry, Lot, Operation, Overage
from billing.orders.models import Order
from billing.orders.references import rf_reference
from common.extensions import db
from common.identity import accounts

ACCOUNTS = 10_000
PASSWORD = "bench password long enough"
NOW = datetime.now(UTC).replace(microsecond=0)
COUNTRIES = ("FR", "CH", "ES", "BE", "DE", "IT", "LU", "PT")
FIRST = ("Anne", "Bruno", "Chloé", "David", "Elena", "Farid", "Greta", "Hugo", "Inès", "Jorge")
LAST = ("Martin", "Bernard", "Dubois", "Garcia", "Muller", "Rossi", "Lopez", "Moreau", "Weber", "Silva")


def build(folder: Path):
    app = create_app({
        "TESTING": False, "SECRET_KEY": "bench-secret-key-0123456789", "SERVER_NAME": "localhost",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}", "MAIL_FOLDER": str(folder / "mail"),
        "ATTACHMENT_FOLDER": str(folder / "attachments"), "RATELIMIT_STORAGE_URI": "memory://",
        "WTF_CSRF_ENABLED": False,
    })
    app.add_url_rule("/bench/bare", "bench_bare", lambda: "ok")
    with app.app_context():
        from flask_migrate import upgrade
        upgrade()
        load_preset(db.session, "toopixel")
        load_preset(db.session, "itsupport")
        accounts.create_staff(db.session, "Staff", "staff@example.com", PASSWORD)
        credits = db.session.scalar(sa.select(Pack).where(Pack.slug == "toopixel-36"))
        tickets = db.session.scalar(sa.select(Pack).where(Pack.slug == "itsupport-ticket-1"))
        populate(db.engine, [(credits.id, credits.policy_id, "credit"), (tickets.id, tickets.policy_id, "ticket")])
    return app


def populate(engine: sa.Engine, packs: list[tuple[int, int, str]]) -> None:
    """The accounts and their history, inserted in bulk (ids given here)."""
    tables: dict[type, list[dict]] = {model: [] for model in (Account, User, Order, Lot, Ticket, Operation, Entry,
                                                              Overage)}
    with engine.connect() as conn:
        ids = {model: conn.scalar(sa.select(sa.func.coalesce(sa.func.max(model.id), 0))) or 0 for model in tables}

    def add(model: type, **row) -> int:
        ids[model] += 1
        tables[model].append({"id": ids[model], **row})
        return ids[model]

    for n in range(ACCOUNTS):
        created = NOW - timedelta(days=5 + n % 900)
        account = add(Account, name=f"{LAST[n % 10]} {('SA', 'SARL', 'GmbH', 'SL')[n % 4]} {n}",
                      country=COUNTRIES[n % len(COUNTRIES)], address="", vat_id="", created_at=created)
        people = []
        for p in range(1 + n % 3):
            people.append(add(User, account_id=account, email=f"person{p}.client{n}@example.com",
                              name=f"{FIRST[(n + p) % 10]} {LAST[(n // 10 + p) % 10]}", password_hash="-",
                              language="en", role="owner" if p == 0 else "member", is_staff=False,
                              email_verified_at=created, created_at=created))
        for k in range(2 + n % 3):
            pack_id, policy_id, unit = packs[k % 2]
            at = created + timedelta(days=10 * k)
            order = add(Order, account_id=account, pack_id=pack_id, overage_id=None, placed_by_id=people[0],
                        quantity=1, status="paid", method="transfer", unit_price=1000, price_includes_vat=False,
                        vat_rate_bp=0, net=1000, vat=0, total=1000, currency="EUR",
                        reference=rf_reference(f"B{n}X{k}"), checkout_key=None, language="en", note="",
                        created_at=at, paid_at=at, reminded_at=None, cancelled_at=None, cancel_reason="")
            granted = 36 if unit == "credit" else 10
            # Some used up, some expired, some never expiring.
            used = granted if n % 7 == k else (n + k) % granted
            expires = None if (n + k) % 5 == 0 else at + timedelta(days=(365, 30, 730)[(n + k) % 3])
            lot = add(Lot, account_id=account, policy_id=policy_id, unit=unit, source="purchase", pack_id=pack_id,
                      order_id=order, owner_id=None, granted=granted, remaining=granted - used, expires_at=expires,
                      rolled_over=0, created_at=at)
            op = add(Operation, key=f"g-{lot}", kind="grant", account_id=account, ticket_id=None, order_id=order,
                     by_id=None, note="", created_at=at)
            add(Entry, operation_id=op, account_id=account, lot_id=lot, ticket_id=None, kind="grant",
                quantity=granted, effective_at=at, idempotency_key=f"g-{lot}")
            ticket = add(Ticket, account_id=account, opened_by_id=people[-1], policy_id=policy_id, unit=unit,
                         kind=None, subject="Help", status="closed" if k else "open", billable_minutes=used * 10,
                         units_charged=used, created_at=at, criticality="normal", updated_at=at + timedelta(days=1),
                         rating_comment="", staff_note="")
            for step in range(used):
                when = at + timedelta(hours=step + 1)
                op = add(Operation, key=f"c-{lot}-{step}", kind="charge", account_id=account, ticket_id=ticket,
                         order_id=None, by_id=None, note="", created_at=when)
                add(Entry, operation_id=op, account_id=account, lot_id=lot, ticket_id=ticket, kind="consume",
                    quantity=-1, effective_at=when, idempotency_key=f"c-{lot}-{step}")
            if k == 0 and n % 11 == 0:
                add(Overage, account_id=account, ticket_id=ticket, status="debt", units=1 + n % 4, settled=0,
                    hourly_rate=None, price=None, currency=None, created_at=at, decided_at=None, decided_by_id=None)
            if k == 1 and n % 13 == 0:
                add(Overage, account_id=account, ticket_id=ticket, status="pending", units=2, settled=0,
                    hourly_rate=6500, price=13000, currency="EUR", created_at=at, decided_at=None,
                    decided_by_id=None)
    with engine.begin() as conn:
        for model, rows in tables.items():
            for chunk in range(0, len(rows), 20_000):
                conn.execute(sa.insert(model), rows[chunk:chunk + 20_000])
        conn.exec_driver_sql("ANALYZE")
    print(", ".join(f"{len(rows):,} {model.__tablename__}" for model, rows in tables.items()))


def median_ms(client, path: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(path)
        response.get_data()
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times) * 1000


CASES = [
    ("list, by name (page 1)", "/staff/clients"),
    ("by name, page 100", "/staff/clients?page=100"),
    ("by balance", "/staff/clients?sort=balance"),
    ("by debt", "/staff/clients?sort=debt"),
    ("by requests awaiting", "/staff/clients?sort=pending"),
    ("by next expiry", "/staff/clients?sort=expiry"),
    ("by last activity", "/staff/clients?sort=activity"),
    ("by last activity, oldest", "/staff/clients?sort=activity&order=asc"),
    ("search a name", "/staff/clients?q=garcia"),
    ("search a person", "/staff/clients?q=In%C3%A8s%20Weber"),
    ("search an email", "/staff/clients?q=client4242%40"),
    ("search a reference", f"/staff/clients?q={rf_reference('B4242X1')}"),
    ("search a country", "/staff/clients?q=switz&sort=balance"),
    ("search, htmx fragment", "/staff/clients?q=moreau&sort=activity"),
]


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        app = build(Path(tmp))
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        print(f"SQLite, {ACCOUNTS:,} accounts, built in {time.perf_counter() - began:.1f} s; median of {runs} runs")
        client = app.test_client()
        assert client.post("/login", data={"email": "staff@example.com", "password": PASSWORD}).status_code == 302
        for _, path in CASES:  # warm up: templates compiled, statements cached
            client.get(path)
        bare = median_ms(client, "/bench/bare", runs * 4)
        hub = median_ms(client, "/staff/", runs)
        print(f"{'baseline: bare Flask route':<32} {bare:8.2f} ms")
        print(f"{'baseline: staff home page':<32} {hub:8.2f} ms")
        worst = 0.0
        for name, path in CASES:
            headers = {"HX-Request": "true"} if "htmx" in name else {}
            times, cpu = [], []
            for _ in range(runs):
                started, spent = time.perf_counter(), time.process_time()
                response = client.get(path, headers=headers)
                response.get_data()
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - spent)
                assert response.status_code == 200, (path, response.status_code)
            ms, cpu_ms = statistics.median(times) * 1000, statistics.median(cpu) * 1000
            worst = max(worst, ms)
            print(f"{name:<32} {ms:8.2f} ms {ms / bare:8.1f} × bare {ms / hub:6.1f} × home   {cpu_ms:7.2f} ms CPU")
        with app.app_context():
            db.engine.dispose()
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"slowest page: {worst:.1f} ms ({'under' if worst < 200 else 'OVER'} 200 ms)")
    return 0 if worst < 200 else 1


if __name__ == "__main__":
    sys.exit(main())
