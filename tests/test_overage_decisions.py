"""The owner decides on work beyond the balance where the mail sends them,
on the figure the bill will say (issue 12.3), and hears when a ``block``
balance stopped staff logging work."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, login, post_form
from tests.smtp import smtp_server  # noqa: F401 - a fixture
from tests.test_desk_views import log


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    return {**smtp_server.config, "SERVER_NAME": None}


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def client_of(app, email: str):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


@pytest.fixture
def asked(app, request):
    """Acme's 3 h of Digitale Artiste (prices net of 20 % VAT, 65 € an hour)
    used up by a 200-minute ticket: 20 min asked beyond, €21.67 net, €26.00
    with VAT. The owner reads in ``request.param`` (en by default)."""
    language = getattr(request, "param", "en")
    now = datetime.now(UTC)
    with app.app_context():
        load_preset(db.session, "digitale")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, language, "FR")
        accounts.mark_email_verified(db.session, owner)
        db.session.add(User(account=owner.account, role="member", email="member@example.com", name="Max Member",
                            password_hash=accounts.hasher.hash(PASSWORD), language=language))
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
        pack = db.session.scalar(select(Pack).where(Pack.slug == "digitale-3h"))
        ledger.grant(db.session, owner.account, pack, key="digitale-3h", now=now)
        ticket = desk.open_ticket(db.session, owner.account, owner, "New page", "Please.", now=now,
                                  policy=pack.policy, kind="production")
        ticket_id = ticket.id
    # Logged as staff do, so that the mail goes at once.
    assert log(client_of(app, "staff@example.com"), ticket_id, 200).status_code == 302
    with app.app_context():
        [overage] = db.session.get(Ticket, ticket_id).overages
        return {"ticket": ticket_id, "overage": overage.id}


def test_the_owner_answers_on_the_ticket_page_the_mail_links_to(app, asked, smtp_server):  # noqa: F811
    [mail] = [m for m in smtp_server.to("owner@example.com") if "needs your approval" in m["Subject"]]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "€26.00 incl. VAT (€21.67 excl. VAT)" in body
    link = re.search(r"https?://[^/\s]+(/portal/tickets/\d+)", body).group(1)

    owner = client_of(app, "owner@example.com")
    page = text(owner.get(link))
    assert f'action="/portal/overages/{asked["overage"]}/approve"' in page
    assert f'action="/portal/overages/{asked["overage"]}/decline"' in page
    assert "Approve: billed €26.00 incl. VAT (€21.67 excl. VAT)" in page

    member = text(client_of(app, "member@example.com").get(link))
    assert "/approve" not in member and "await the owner's answer" in member

    answered = post_form(owner, f"/portal/overages/{asked['overage']}/approve", {"next": link})
    assert answered.status_code == 302 and answered.headers["Location"] == link
    with app.app_context():
        bill = db.session.scalar(select(Order).where(Order.overage_id == asked["overage"]))
        assert (bill.net, bill.total) == (2167, 2600)  # the figures the owner decided on
    assert "Pay €26.00 for ticket" in text(owner.get(link))


@pytest.mark.parametrize("asked", ["fr"], indirect=True)
def test_the_answer_in_french(app, asked):
    page = text(client_of(app, "owner@example.com").get(f"/portal/tickets/{asked['ticket']}"))
    assert "Accepter\u00a0: facturation de 26,00\u00a0€ TTC (21,67\u00a0€ HT)" in page
    assert f'action="/portal/overages/{asked["overage"]}/approve"' in page


@pytest.mark.parametrize("language, subject", [("en", "Work on ticket #1 waits for credit"),
                                               ("fr", "Le travail sur le ticket n°\u00a01 attend du crédit")])
def test_a_block_balance_that_refuses_staff_time_tells_the_owners(app, smtp_server, language, subject):  # noqa: F811
    """Innova's credits never go beyond the balance: 60 credits, an
    intervention of 75 minutes is refused, and the owners hear it, once."""
    now = datetime.now(UTC)
    with app.app_context():
        load_preset(db.session, "innova")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, language, "ES")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
        pack = db.session.scalar(select(Pack).where(Pack.slug == "innova-60"))
        ledger.grant(db.session, owner.account, pack, key="innova-60", now=now)
        ticket = desk.open_ticket(db.session, owner.account, owner, "Broken form", "Please.", now=now,
                                  policy=pack.policy, kind="intervention")
        ticket_id = ticket.id
    staff = client_of(app, "staff@example.com")
    for _ in range(2):  # staff try twice: one message
        refused = log(staff, ticket_id, 61)
        assert refused.status_code == 422 and "Not saved: 15 credits missing" in text(refused)
    [mail] = [m for m in smtp_server.to("owner@example.com") if m["Subject"] == subject]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "/portal/buy" in body and ("15 credits" in body or "15\u00a0crédits" in body or "15 crédits" in body)
    with app.app_context():
        assert db.session.get(Ticket, ticket_id).billable_minutes == 0  # nothing was written
