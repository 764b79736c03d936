"""Who may use the quote, phone-order and complimentary URLs (issue 14.5):
anonymous, a member and an owner of Acme, the owner of another account, an
agent, an admin and a deactivated staff member; a refused POST (to the login
page, 403, 404 or a form refused) writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from common.extensions import db
from tests.access import ADMINS, AGENTS, EMAIL, World, covers, matrix
from tests.test_portal_client import matrix_quotes

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
    "/quotes/{quote_token}": {"anonymous": 200, "client": 200, "staff": 200},
}
POSTS = {
    # No payment method, no one-time token: said on the page.
    "/portal/quotes/{quote}/accept": {"anonymous": "login", "client": 422, "another": 404, "staff": 403},
    "/staff/quotes/{quote}": {**AGENTS, "staff": 422},
    "/staff/quotes/{quote}/withdraw": {**AGENTS, "staff": "/staff/quotes"},
    "/staff/clients/{account}/orders/new": {**AGENTS, "staff": 422},
    "/staff/clients/{account}/complimentary": {**ADMINS, "admin": 422},
    # No one-time token (a client's request needs nothing else): said on the form.
    "/quotes/request/itsupport-team-tickets": {"anonymous": 422, "client": 422, "staff": 403},
    "/quotes/{quote_token}": {"anonymous": 422, "client": 422, "staff": 403},
}
COVERS = covers(PAGES, POSTS)


def make(app) -> dict:
    """Acme's quote for the pooled bundle, sent; a visitor's, sent (with
    the token of its link): the portal matrix's."""
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == EMAIL["owner"]))
        return {**matrix_quotes(owner), "account": owner.account_id}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("quotes-access"), make)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS)
