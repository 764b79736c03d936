"""Who may use the quote, phone-order and complimentary URLs (issue 14.5):
anonymous, a member and an owner of Acme, the owner of another account, an
agent, an admin and a deactivated staff member; a refused POST (to the login
page, 403, 404 or a form refused) writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.quotes import services as quotes
from common.extensions import db
from tests.access import ADMINS, AGENTS, EMAIL, World, covers, matrix

PAGES = {
    "/portal/quotes": {"anonymous": "login", "client": 200, "staff": "/staff/quotes"},
    "/portal/quotes/{quote}": {"anonymous": "login", "client": 200, "another": 404, "staff": "/staff/quotes/{quote}"},
    "/staff/quotes": AGENTS,
    "/staff/quotes/{quote}": AGENTS,
    "/staff/clients/{account}/orders/new": AGENTS,
    # A goodwill gesture is an admin's, like a credit adjustment.
    "/staff/clients/{account}/complimentary": ADMINS,
    "/quotes/request/itsupport-team-tickets": {"anonymous": 200, "client": 200, "staff": 200},
    # A visitor's quote: whoever holds the link mailed to the address that asked.
    "/quotes/{token}": {"anonymous": 200, "client": 200, "staff": 200},
}
POSTS = {
    # No payment method, no one-time token: said on the page.
    "/portal/quotes/{quote}/accept": {"anonymous": "login", "client": 422, "another": 404, "staff": 403},
    "/staff/quotes/{quote}": {**AGENTS, "staff": 422},
    "/staff/quotes/{quote}/withdraw": {**AGENTS, "staff": "/staff/quotes"},
    "/staff/clients/{account}/orders/new": {**AGENTS, "staff": 422},
    "/staff/clients/{account}/complimentary": {**ADMINS, "admin": 422},
    # A client's request needs nothing typed (the pooled bundle's least quantity, for their account).
    "/quotes/request/itsupport-team-tickets": {"anonymous": 422, "client": "/portal/quotes/{next}", "staff": 403},
    "/quotes/{token}": {"anonymous": 422, "client": 422, "staff": 403},
}
COVERS = covers(PAGES, POSTS)


def make(app) -> dict:
    """Acme's quote for the pooled bundle, sent; a visitor's, sent (with
    the token of its link)."""
    now = datetime.now(UTC)
    with app.app_context():
        load_preset(db.session, "itsupport")
        owner = db.session.scalar(select(User).where(User.email == EMAIL["owner"]))
        admin = db.session.scalar(select(User).where(User.email == EMAIL["admin"]))
        pooled = db.session.scalar(select(Pack).where(Pack.slug == "itsupport-team-tickets"))
        asked = {"name": "Vic", "email": "vic@example.com", "company": "", "country": "FR", "language": "en",
                 "message": "", "quantity": 20, "now": now}
        acme = quotes.request_quote(db.session, pooled, requester=owner, **asked)
        visitor = quotes.request_quote(db.session, pooled, requester=None, **asked)
        terms = {"by": admin, "unit_price": 3800, "quantity": 20, "validity_months": None, "note": "", "now": now,
                 "valid_until": now.date() + timedelta(days=30)}
        quotes.send_quote(db.session, acme, **terms)
        token = quotes.send_quote(db.session, visitor, **terms)
        return {"quote": acme.id, "token": token, "account": owner.account_id, "next": visitor.id + 1}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("quotes-access"), make)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS)
