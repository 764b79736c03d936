"""The commands that look at the whole database, each on a database of its
own: `flask ledger verify` and `flask ledger expire`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from billing.ledger_models import Entry, Lot
from common.extensions import db
from ledger_support import NOW, buy, charge, days, new_client, ticket, two_months


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
        buy(db.session, account, "digitale-10h", now=datetime.now(timezone.utc) - timedelta(days=350))
    assert runner.invoke(args=["ledger", "expire"]).output.splitlines() == ["expired\t1 lot(s)", "warned\t1 lot(s)"]
    assert runner.invoke(args=["ledger", "expire"]).output.splitlines() == ["expired\t0 lot(s)", "warned\t0 lot(s)"]
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
