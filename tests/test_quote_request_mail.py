"""Staff hear of each quote a visitor or a client asks for: a mail through
the outbox to every active staff member who has not switched "Quote
requests" off, in their language, with a link to the staff quote page
built from the site's public address (SERVER_NAME), over real SMTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.notifications import outbox
from billing.notifications.outbox import OutboxMessage
from billing.quotes.models import Quote
from common.extensions import db
from common.identity import accounts
from portal.notifications import KIND_LABELS
from tests.conftest import PASSWORD, form_token, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

ASK = "/quotes/request/itsupport-team-tickets"
VISITOR = {"name": "Ines IT", "email": "ines@example.com", "company": "Helpdesk SARL", "country": "FR",
           "quantity": "20", "message": "Twenty users, one pool"}


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    # The public address the links are built from.
    return {"SERVER_NAME": "support.example.com", **smtp_server.config}


@pytest.fixture
def team(app, people):
    """Sam (admin, English), Agathe (agent, French), Esteban (agent,
    Spanish) and Gus (agent, deactivated), with the IT-support catalogue."""
    with app.app_context():
        load_preset(db.session, "itsupport")
        load_preset(db.session, "webservice")
        accounts.create_staff(db.session, "Agathe Agent", "agathe@example.com", PASSWORD, language="fr", role="agent")
        accounts.create_staff(db.session, "Esteban Agent", "esteban@example.com", PASSWORD, language="es",
                              role="agent")
        gone = accounts.create_staff(db.session, "Gus Gone", "gus@example.com", PASSWORD, role="agent")
        gone.removed_at = datetime.now(UTC)
        db.session.commit()


def plain(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def last_quote(app) -> Quote:
    with app.app_context():
        found = db.session.scalar(select(Quote).order_by(Quote.id.desc()))
        db.session.expunge_all()
        return found


def test_a_visitors_request_mails_each_active_staff_member_a_link_to_price_it(app, client, team,
                                                                              smtp_server):  # noqa: F811
    assert post_form(client, ASK, VISITOR).status_code == 302
    quote = last_quote(app)
    link = f"http://support.example.com/staff/quotes/{quote.id}"

    [sam] = smtp_server.to("staff@example.com")
    assert sam["Subject"] == f"Quote request {quote.id}: Multi-user tickets (from 20) from Ines IT"
    body = plain(sam)
    assert "Ines IT (Helpdesk SARL, ines@example.com) asks for a quote" in body
    assert "20 items" in body and "Twenty users, one pool" in body and link in body
    assert link in sam.get_body(preferencelist=("html",)).get_content()
    [agathe] = smtp_server.to("agathe@example.com")
    assert agathe["Subject"].strip().startswith(f"Demande de devis {quote.id}") and link in plain(agathe)
    [esteban] = smtp_server.to("esteban@example.com")
    assert esteban["Subject"].strip().startswith(f"Solicitud de presupuesto {quote.id}") and link in plain(esteban)
    assert smtp_server.to("gus@example.com") == [] and smtp_server.to("ines@example.com") == []

    # The link leads a staff member to the quote's form, once logged in.
    staff = app.test_client()
    assert login(staff, "agathe@example.com").status_code == 302
    page = staff.get(link.removeprefix("http://support.example.com"))
    assert page.status_code == 200 and "Twenty users, one pool" in page.get_data(as_text=True)


def test_a_clients_request_names_their_account(app, client, team, smtp_server):  # noqa: F811
    login(client, "owner@example.com")
    assert post_form(client, "/quotes/request/webservice-12h", {"message": "Our shop site"}).status_code == 302
    quote = last_quote(app)
    [sam] = smtp_server.to("staff@example.com")
    assert sam["Subject"].strip().startswith(f"Quote request {quote.id}:") and sam["Subject"].endswith("from Acme")
    assert "Olive Owner of Acme (owner@example.com) asks for a quote" in plain(sam)
    assert smtp_server.to("owner@example.com") == []  # the client reads the request in the portal


def test_a_staff_member_switches_quote_requests_off_and_hears_no_more(app, client, team,
                                                                      smtp_server):  # noqa: F811
    staff = app.test_client()
    login(staff, "agathe@example.com")
    # Reached from the back office's home as well as from a mail's link.
    home = unescape(staff.get("/staff/").get_data(as_text=True))
    [preferences] = re.findall(r'class="hub-card" href="([^"]+)">\s*<strong>Préférences d\'e-mail</strong>', home)
    page = staff.get(preferences).get_data(as_text=True)
    assert 'name="quote_requests"' in page and "Demandes de devis" in page
    # Unchecked boxes are not sent: new tickets stay on, quote requests go off.
    assert post_form(staff, "/portal/notifications", {"new_tickets": "on"}).status_code == 302

    assert post_form(client, ASK, VISITOR).status_code == 302
    assert smtp_server.to("agathe@example.com") == []
    assert len(smtp_server.to("staff@example.com")) == 1
    with app.app_context():
        kinds = {(m.kind, m.email) for m in db.session.scalars(select(OutboxMessage))}
        assert kinds == {("quote_requested_staff", "staff@example.com"),
                         ("quote_requested_staff", "esteban@example.com")}


def test_the_staff_mail_page_names_quote_mails(app, client, team, smtp_server):  # noqa: F811
    """It once answered a 500 for a quote sent: its kind had no name there."""
    assert post_form(client, ASK, VISITOR).status_code == 302
    quote = last_quote(app)
    login(client, "staff@example.com")
    until = (datetime.now(UTC).date() + timedelta(days=9)).isoformat()
    assert post_form(client, f"/staff/quotes/{quote.id}", {
        "unit_price": "38", "quantity": "20", "valid_until": until,
        "token": form_token(client, f"/staff/quotes/{quote.id}")}).status_code == 302
    page = client.get("/portal/staff/mail")
    assert page.status_code == 200
    assert "Quote request" in page.get_data(as_text=True) and "Quote sent" in page.get_data(as_text=True)
    assert set(KIND_LABELS) == set(outbox.KINDS)


def test_a_refused_request_mails_nobody(app, client, team, smtp_server):  # noqa: F811
    assert post_form(client, ASK, {**VISITOR, "quantity": "3"}).status_code == 422
    assert smtp_server.messages == []
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "ines@example.com")) is None
        assert db.session.scalars(select(OutboxMessage)).all() == []
