"""Concurrent writers on one account: every charge counted once, none lost,
no balance below zero, no entry twice (invariants 5 and 6)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from ledger_support import NOW, assert_verified, buy, held, key, new_client, pack, staff, ticket
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.accounts.models import Account
from billing.catalogue.models import Pack
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Operation
from common.extensions import db

both = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
THREADS = 50
# Connections the threads share: enough for real contention, few enough that
# other test runs on the same server stay under its max_connections.
CONNECTIONS = 20


def at_once(app, work: Callable[[Session, int], object], threads: int = THREADS) -> list[object]:
    """Run ``work(session, i)`` in ``threads`` threads released together, each
    with its own session; the result or the exception of each."""
    with app.app_context():
        url = db.engine.url
    # SQLite's writers queue on one lock: fifty released at once on a loaded
    # machine can wait longer than its default 5 s. This test judges the
    # balance they leave, not how long they waited.
    connect_args = {"timeout": 120} if url.get_backend_name() == "sqlite" else {}
    engine = sa.create_engine(url, pool_size=min(threads, CONNECTIONS), max_overflow=0, pool_timeout=120,
                              connect_args=connect_args)
    start = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def run(i: int) -> None:
        with Session(engine) as session:
            start.wait()
            try:
                results[i] = work(session, i)
            except Exception as error:  # noqa: BLE001 - collected for the test to judge
                results[i] = error

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    engine.dispose()
    return results


def toopixel_tickets(app, tickets: int, credits: int = 36) -> tuple[int, list[int]]:
    """An account holding ``credits`` Too Pixel credits and ``tickets`` open
    tickets: the account's id and the tickets' ids."""
    with app.app_context():
        session = db.session
        account, owner = new_client(session)
        buy(session, account, "toopixel-36")
        if credits != 36:
            ledger.adjust(session, account, pack(session, "toopixel-36").policy, credits - 36, reason="round figure",
                          by=staff(session), key=key(), now=NOW)
        return account.id, [ticket(session, account, owner).id for _ in range(tickets)]


@both
def test_50_threads_charging_one_account_end_with_the_exact_balance(app):
    account_id, tickets = toopixel_tickets(app, THREADS, credits=40)

    def charge(session: Session, i: int):
        work = session.get(Ticket, tickets[i])
        return ledger.charge_ticket_to(session, work, 10, by=None, key=f"log-{tickets[i]}", now=NOW).id

    results = at_once(app, charge)
    refused = [r for r in results if isinstance(r, ledger.InsufficientBalance)]
    failed = [r for r in results if isinstance(r, Exception) and r not in refused]
    assert failed == []
    assert len(refused) == 10 and all(r.missing == 1 for r in refused)
    assert len([r for r in results if isinstance(r, int)]) == 40
    with app.app_context():
        session = db.session
        assert held(session, session.get(Account, account_id), "toopixel-36") == 0
        assert session.scalar(select(func.min(Lot.remaining)).where(Lot.account_id == account_id)) == 0
        consumed = session.scalars(select(Entry.idempotency_key).where(Entry.kind == "consume")).all()
        assert len(consumed) >= 40 and len(set(consumed)) == len(consumed)
        assert -session.scalar(select(func.sum(Entry.quantity)).where(Entry.kind == "consume")) == 40
        assert_verified(session, session.get(Account, account_id))


@both
def test_the_same_key_at_once_writes_one_charge(app):
    account_id, [work_id] = toopixel_tickets(app, 1)

    def charge(session: Session, i: int):
        work = session.get(Ticket, work_id)
        # The same request retried: only the first one may count, whatever the later ones say.
        return ledger.charge_ticket_to(session, work, 30 + i, by=None, key="double-click", now=NOW).id

    results = at_once(app, charge, threads=20)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    with app.app_context():
        session = db.session
        assert session.scalar(select(func.count()).select_from(Operation).where(Operation.key == "double-click")) == 1
        charged = session.get(Ticket, work_id).units_charged
        assert charged in (3, 4, 5)
        assert held(session, session.get(Account, account_id), "toopixel-36") == 36 - charged
        assert_verified(session, session.get(Account, account_id))


@both
def test_the_same_grant_at_once_grants_once(app):
    with app.app_context():
        session = db.session
        account_id = new_client(session)[0].id
        pack_id = pack(session, "innova-60").id

    def grant(session: Session, i: int):
        return ledger.grant(session, session.get(Account, account_id), session.get(Pack, pack_id),
                            key="stripe-event-1", now=NOW).id

    results = at_once(app, grant, threads=20)
    assert len(set(results)) == 1 and isinstance(results[0], int), results
    with app.app_context():
        session = db.session
        assert Counter(session.scalars(select(Lot.account_id)).all()) == {account_id: 1}
        assert_verified(session, session.get(Account, account_id))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_same_key_on_two_accounts_at_once_is_refused_for_one(app):
    with app.app_context():
        session = db.session
        accounts = [new_client(session)[0].id for _ in range(2)]
        pack_id = pack(session, "innova-60").id

    def grant(session: Session, i: int):
        return ledger.grant(session, session.get(Account, accounts[i % 2]), session.get(Pack, pack_id),
                            key="shared", now=NOW).id

    results = at_once(app, grant, threads=10)
    granted = {r for r in results if isinstance(r, int)}
    assert len(granted) == 1
    assert all(isinstance(r, ledger.KeyReused) for r in results if not isinstance(r, int))
