"""One unit of work (billing.transaction.atomic) shared by several services:
a caller (checkout confirming a payment) opens it, the ledger joins it and
still locks and checks its key, and the outermost block alone commits."""

from __future__ import annotations

import pytest
from checkout_support import NOW, both, client, pack, session  # noqa: F401 - session is a fixture
from sqlalchemy import event, func, select

from billing.ledger import services as ledger
from billing.ledger.models import Lot, Operation
from billing.transaction import UnitOfWorkFailed, atomic, in_unit_of_work

_keys = iter(range(1, 1_000_000))


def key() -> str:
    return f"test-{next(_keys)}"


def lots(session) -> int:
    return session.scalar(select(func.count()).select_from(Lot))


class Abandon(Exception):
    """The caller's own failure, after the ledger's work."""


@both
def test_a_grant_inside_the_callers_unit_goes_with_it(session):
    account, _owner = client(session)
    with pytest.raises(Abandon), atomic(session):
        op = ledger.grant(session, account, pack(session, "demo-hours-5"), key=key(), now=NOW)
        assert op.lot.remaining == 300 and lots(session) == 1  # visible inside the unit...
        assert in_unit_of_work(session)
        raise Abandon

    assert lots(session) == 0 and not in_unit_of_work(session)  # ...and gone with it: the caller decided


@both
def test_the_outermost_block_commits_the_grant_with_the_callers_work(session):
    account, _owner = client(session)
    with atomic(session):
        ledger.grant(session, account, pack(session, "demo-hours-5"), key="order:1:grant", now=NOW)
        account.name = "Renamed in the same unit"
    session.rollback()  # nothing left to undo: it was committed
    session.expire_all()

    assert lots(session) == 1 and account.name == "Renamed in the same unit"


@both
def test_a_key_seen_before_returns_the_first_operation_alone_or_inside_a_unit(session):
    account, _owner = client(session)
    hours = pack(session, "demo-hours-5")
    first = ledger.grant(session, account, hours, key="order:7:grant", now=NOW)

    with atomic(session):
        again = ledger.grant(session, account, hours, key="order:7:grant", now=NOW)

    assert again.id == first.id and lots(session) == 1
    assert session.scalar(select(func.count()).select_from(Operation)) == 1


@both
def test_an_error_inside_the_write_rolls_the_whole_unit_back(session):
    hours = pack(session, "demo-hours-5")
    other, _owner = client(session)
    ledger.grant(session, other, hours, key="taken", now=NOW)
    account, _owner = client(session)

    with pytest.raises(ledger.KeyReused), atomic(session):
        ledger.grant(session, account, hours, key=key(), now=NOW)
        ledger.grant(session, account, hours, key="taken", now=NOW)

    assert lots(session) == 1  # the other account's, committed before: all of ours is gone


@both
def test_a_failure_caught_inside_the_unit_still_rolls_it_back(session):
    """A caller that catches a service's refusal and carries on cannot commit
    the half that was left: the unit is rolled back and says so."""
    hours = pack(session, "demo-hours-5")
    other, _owner = client(session)
    ledger.grant(session, other, hours, key="taken", now=NOW)
    account, _owner = client(session)

    with pytest.raises(UnitOfWorkFailed), atomic(session):
        ledger.grant(session, account, hours, key=key(), now=NOW)
        try:
            ledger.grant(session, account, hours, key="taken", now=NOW)
        except ledger.KeyReused:
            pass

    assert lots(session) == 1
    with atomic(session):  # the next unit starts clean
        ledger.grant(session, account, hours, key=key(), now=NOW)
    assert lots(session) == 2


@both
def test_refund_inside_the_callers_unit(session):
    account, _owner = client(session)
    lot = ledger.grant(session, account, pack(session, "demo-hours-5"), key=key(), now=NOW).lot

    with pytest.raises(Abandon), atomic(session):
        ledger.refund(session, lot, by=None, key=key(), now=NOW)
        raise Abandon
    assert session.get(Lot, lot.id).remaining == 300

    with atomic(session):
        ledger.refund(session, lot, by=None, key=key(), now=NOW)
    session.expire_all()
    assert session.get(Lot, lot.id).remaining == 0


@both
def test_a_commit_the_database_refuses_is_rolled_back(session):
    """The outermost block commits inside its guard: a refused commit (a
    deferred constraint, a lost connection) leaves the session usable."""
    account, _owner = client(session)
    hours = pack(session, "demo-hours-5")

    def refuse(_session):
        raise RuntimeError("the database refused the commit")

    event.listen(session, "before_commit", refuse)
    try:
        with pytest.raises(RuntimeError), atomic(session):
            ledger.grant(session, account, hours, key=key(), now=NOW)
    finally:
        event.remove(session, "before_commit", refuse)

    assert lots(session) == 0  # rolled back, and the session answers again
    ledger.grant(session, account, hours, key=key(), now=NOW)
    assert lots(session) == 1
