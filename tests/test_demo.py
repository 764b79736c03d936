"""`make run` seeds the demo users the README lists; running it again changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from billing.accounts.models import User
from billing.desk.models import Ticket, TicketMessage, TimeEntry
from billing.ledger.models import Entry, Lot, Operation
from billing.notifications.outbox import OutboxMessage
from billing.orders.models import Invoice, Order, Payment
from commands.demo import CLIENT, STAFF
from common.extensions import db
from common.identity import accounts


def test_demo_users_are_created_once_and_can_log_in(app, runner):
    for _ in range(2):
        result = runner.invoke(args=["demo", "users"])
        assert result.exit_code == 0, result.output
    assert f"staff:  {STAFF['email']} / {STAFF['password']}" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2
        staff = accounts.authenticate(db.session, STAFF["email"], STAFF["password"])
        client = accounts.authenticate(db.session, CLIENT["email"], CLIENT["password"])
        assert staff.is_staff and staff.account is None
        assert client.is_owner and client.account.name == CLIENT["organisation"]
        assert client.email_verified_at is not None


def counts(models) -> dict[str, int]:
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model)) for model in models}


def test_the_demo_client_has_a_history_that_ledger_verify_passes(app, runner):
    result = runner.invoke(args=["catalogue", "load", "demo"])
    assert result.exit_code == 0, result.output
    models = (User, Order, Payment, Invoice, Lot, Entry, Operation, Ticket, TicketMessage, TimeEntry, OutboxMessage)
    seen = []
    for _ in range(2):
        result = runner.invoke(args=["demo", "users"])
        assert result.exit_code == 0, result.output
        with app.app_context():
            seen.append(counts(models))
    assert seen[0] == seen[1], "running `demo users` again changed something"
    assert "history: order #1 paid (demo-hours-10), ticket #1 with 25 min charged" in result.output
    with app.app_context():
        client = accounts.find_user(db.session, CLIENT["email"])
        [order] = db.session.scalars(select(Order).where(Order.account_id == client.account_id)).all()
        [lot] = db.session.scalars(select(Lot).where(Lot.account_id == client.account_id)).all()
        assert order.status == "paid" and lot.order_id == order.id and lot.remaining == 600 - 25
        grant = db.session.scalar(select(Operation).where(Operation.kind == "grant"))
        assert grant.key == f"order:{order.id}:grant"
        [ticket] = db.session.scalars(select(Ticket).where(Ticket.account_id == client.account_id)).all()
        assert (ticket.billable_minutes, ticket.units_charged) == (25, 25)
    assert seen[1]["Invoice"] == 1 and seen[1]["TimeEntry"] == 2
    # What `make run` sets: the demo order's mail, which carries the transfer's
    # instructions and QR code, is sent (without an IBAN it failed at each try).
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    app.config["PROVIDER_IBAN"] = re.search(r"FORFAIT_PROVIDER_IBAN \?= (\S+)", makefile).group(1)
    app.config["SERVER_NAME"] = "forfait.example"
    runner.invoke(args=["jobs", "run"])
    with app.app_context():
        outbox = db.session.execute(select(OutboxMessage.kind, OutboxMessage.status, OutboxMessage.last_error)).all()
        assert {row.status for row in outbox} == {"sent"}, [tuple(r) for r in outbox]
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok\t1 lots\t")


def test_readme_gives_the_demo_credentials():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for who in (STAFF, CLIENT):
        assert f"`{who['email']}`" in readme and f"`{who['password']}`" in readme
