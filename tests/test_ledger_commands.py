"""The commands that look at the whole database, each on a database of its
own: `flask ledger verify` and `flask ledger expire`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from ledger_support import NOW, buy, charge, days, key, new_client, pack, staff, ticket, two_months
from sqlalchemy import select, update

from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Overage, OverageChange
from common.extensions import db


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_verify_passes_after_the_scenarios_and_finds_a_tampered_remaining(app, runner):
    with app.app_context():
        account = two_months(db.session)
        lot_id = db.session.scalar(select(Lot.id).where(Lot.account_id == account.id))
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0 and result.output.startswith("ok\t"), result.output
    with app.app_context():
        db.session.execute(update(Lot).where(Lot.id == lot_id).values(remaining=Lot.remaining + 1))
        db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"lot {lot_id}: remaining 28 but its entries sum to 27" in result.output


def test_verify_finds_a_ticket_charged_against_the_rule_and_a_draw_out_of_order(app, runner):
    with app.app_context():
        session = db.session
        account, owner = new_client(session)
        early = buy(session, account, "toopixel-36")
        late = buy(session, account, "toopixel-72", now=NOW + days(10))
        work = ticket(session, account, owner)
        charge(session, work, 10)
        # Move the draw to the later lot by hand, as a bug would.
        session.execute(update(Entry).where(Entry.ticket_id == work.id).values(lot_id=late.id))
        session.execute(update(Lot).where(Lot.id == early.id).values(remaining=36))
        session.execute(update(Lot).where(Lot.id == late.id).values(remaining=71))
        work.units_charged = 2
        session.commit()
        early_id, late_id, ticket_id = early.id, late.id, work.id
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"drew from lot {late_id} while lot {early_id}, which comes first, held 36" in result.output
    assert f"ticket {ticket_id}: 10 min cost 1 credit(s), charged 2" in result.output


def test_expire_writes_expiries_and_warnings(app, runner):
    with app.app_context():
        account, _ = new_client(db.session)
        buy(db.session, account, "digitale-3h")  # lapsed long before today
        buy(db.session, account, "digitale-10h", now=datetime.now(UTC) - timedelta(days=350))
    assert runner.invoke(args=["ledger", "expire"]).output.splitlines() == ["expired\t1 lot(s)", "warned\t1 lot(s)"]
    assert runner.invoke(args=["ledger", "expire"]).output.splitlines() == ["expired\t0 lot(s)", "warned\t0 lot(s)"]
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0


def debts_and_a_request(session):
    """A debt paid in part, a debt corrected away, and a pending request."""
    account, owner = new_client(session)
    pack(session, "toopixel-36").policy.overage_mode = "allow"
    buy(session, account, "toopixel-36")
    first, second = ticket(session, account, owner), ticket(session, account, owner)
    charge(session, first, 400, now=NOW + days(1))  # 4 owed
    charge(session, second, 100, now=NOW + days(2))  # 10 owed
    charge(session, second, 0, now=NOW + days(3))  # withdrawn
    ledger.adjust(session, account, pack(session, "toopixel-36").policy, 2, reason="goodwill", by=staff(session),
                  key=key(), now=NOW + days(3))  # pays 2 of the 4
    buy(session, account, "digitale-3h", now=NOW + days(4))
    charge(session, ticket(session, account, owner, "digitale-3h"), 200, now=NOW + days(5))  # 20 min asked
    return account


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_verify_finds_an_overage_that_disagrees_with_its_changes(app, runner):
    with app.app_context():
        session = db.session
        account, owner = new_client(session)
        pack(session, "toopixel-36").policy.overage_mode = "allow"
        buy(session, account, "toopixel-36")
        charge(session, ticket(session, account, owner), 400, now=NOW + days(1))
        [debt] = session.scalars(select(Overage).where(Overage.account_id == account.id)).all()
        debt_id = debt.id
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    with app.app_context():
        db.session.execute(sa.text(
            "INSERT INTO overage_changes (overage_id, operation_id, status, units, settled, created_at) "
            "VALUES (:overage, NULL, 'debt', 1, 0, :at)"), {"overage": debt_id, "at": NOW + days(2)})
        db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"overage {debt_id}: 4 unit(s), 0 settled, but its changes sum to 5 and 0"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_0011_gives_each_overage_one_change_of_what_it_holds(app, runner):
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        account = debts_and_a_request(db.session)
        before = sorted(db.session.execute(
            select(Overage.id, Overage.status, Overage.units, Overage.settled, Overage.created_at)
            .where(Overage.account_id == account.id)).all())
        assert [row.status for row in before] == ["debt", "withdrawn", "pending"]
        db.session.remove()
        downgrade(revision="0010")
        upgrade()
        changes = db.session.execute(
            select(OverageChange.overage_id, OverageChange.status, OverageChange.units, OverageChange.settled,
                   OverageChange.created_at, OverageChange.operation_id).order_by(OverageChange.id)).all()
    # The withdrawn debt holds nothing: it has no change to date.
    assert changes == [(row.id, row.status, row.units, row.settled, row.created_at, None)
                       for row in before if row.status != "withdrawn"]
    assert changes[0][2:4] == (4, 2)
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
