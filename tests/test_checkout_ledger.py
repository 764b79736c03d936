"""billing.ledger's ``commit=False``: a caller (checkout confirming a
payment) owns the transaction, and the ledger still locks and checks its key."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from billing.ledger import services as ledger
from billing.ledger.models import Lot, Operation
from checkout_support import NOW, both, client, pack, session  # noqa: F401 - session is a fixture

_keys = iter(range(1, 1_000_000))


def key() -> str:
    return f"test-{next(_keys)}"


def lots(session) -> int:
    return session.scalar(select(func.count()).select_from(Lot))


@both
def test_a_grant_in_the_callers_transaction_is_flushed_not_committed(session):
    account, _owner = client(session)
    op = ledger.grant(session, account, pack(session, "demo-hours-5"), key=key(), now=NOW, commit=False)
    assert op.lot.remaining == 300 and lots(session) == 1  # visible inside the transaction...

    session.rollback()

    assert lots(session) == 0  # ...and gone with it: the caller decided


@both
def test_the_caller_commits_the_grant_with_its_own_work(session):
    account, _owner = client(session)
    ledger.grant(session, account, pack(session, "demo-hours-5"), key="order:1:grant", now=NOW, commit=False)
    account.name = "Renamed in the same transaction"
    session.commit()
    session.expire_all()

    assert lots(session) == 1 and account.name == "Renamed in the same transaction"


@both
def test_a_key_seen_before_returns_the_first_operation_in_either_mode(session):
    account, _owner = client(session)
    hours = pack(session, "demo-hours-5")
    first = ledger.grant(session, account, hours, key="order:7:grant", now=NOW)

    again = ledger.grant(session, account, hours, key="order:7:grant", now=NOW, commit=False)

    assert again.id == first.id and lots(session) == 1
    assert session.scalar(select(func.count()).select_from(Operation)) == 1


@both
def test_an_error_inside_the_write_rolls_the_callers_transaction_back(session):
    hours = pack(session, "demo-hours-5")
    other, _owner = client(session)
    ledger.grant(session, other, hours, key="taken", now=NOW)
    account, _owner = client(session)
    ledger.grant(session, account, hours, key=key(), now=NOW, commit=False)

    with pytest.raises(ledger.KeyReused):
        ledger.grant(session, account, hours, key="taken", now=NOW, commit=False)

    assert lots(session) == 1  # the other account's, committed before: all of ours is gone


@both
def test_refund_in_the_callers_transaction(session):
    account, _owner = client(session)
    lot = ledger.grant(session, account, pack(session, "demo-hours-5"), key=key(), now=NOW).lot

    ledger.refund(session, lot, by=None, key=key(), now=NOW, commit=False)
    session.rollback()
    assert session.get(Lot, lot.id).remaining == 300

    ledger.refund(session, lot, by=None, key=key(), now=NOW, commit=False)
    session.commit()
    session.expire_all()
    assert session.get(Lot, lot.id).remaining == 0
