"""Who may use the quote, phone-order and complimentary URLs (issue 14.5):
anonymous, a member and an owner of Acme, the owner of another account, an
agent, an admin and a deactivated staff member; a refused POST (to the login
page, 403, 404 or a form refused) writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, csrf_token, login
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.quotes import services as quotes
from common.extensions import db
from common.identity import accounts
from tests.access import covers
from tests.test_security import snapshot

ROLES = ("anonymous", "member", "owner", "another", "agent", "admin", "deactivated")
EMAIL = {"member": "member@example.com", "owner": "owner@example.com", "another": "other@example.com",
         "agent": "agent@example.com", "admin": "staff@example.com", "deactivated": "gone@example.com"}
CLIENTS = ("member", "owner", "another")


@pytest.fixture
def cast(app, people) -> dict:
    """Acme's quote for the pooled bundle, sent; a visitor's, sent (with
    the token of its link); another account; an agent and a deactivated agent."""
    now = datetime.now(UTC)
    with app.app_context():
        load_preset(db.session, "itsupport")
        accounts.register(db.session, "Other", "Otto Other", "other@example.com", PASSWORD, "en", "FR")
        accounts.create_staff(db.session, "Agnes Agent", "agent@example.com", PASSWORD, role="agent")
        accounts.create_staff(db.session, "Gus Gone", "gone@example.com", PASSWORD, role="agent")
        owner = db.session.scalar(select(User).where(User.email == "owner@example.com"))
        admin = db.session.scalar(select(User).where(User.email == "staff@example.com"))
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


def signed_in(app, client, role: str):
    if role == "anonymous":
        return client
    assert login(client, EMAIL[role]).status_code == 302
    if role == "deactivated":  # deactivated once logged in: the session ends at once
        with app.app_context():
            db.session.scalar(select(User).where(User.email == EMAIL[role])).removed_at = datetime.now(UTC)
            db.session.commit()
    return client


def want(table: dict, role: str):
    if role in table:
        return table[role]
    if role == "deactivated":
        return table.get("anonymous", "login")
    if role in CLIENTS:
        return table.get("client", 403)
    return table.get("staff", 200)


STAFF_ONLY = {"anonymous": "login", "client": 403, "staff": 200}
PAGES = {
    "/portal/quotes": {"anonymous": "login", "client": 200, "staff": "/staff/quotes"},
    "/portal/quotes/{quote}": {"anonymous": "login", "client": 200, "another": 404, "staff": "/staff/quotes/{quote}"},
    "/staff/quotes": STAFF_ONLY,
    "/staff/quotes/{quote}": STAFF_ONLY,
    "/staff/clients/{account}/orders/new": STAFF_ONLY,
    # A goodwill gesture is an admin's, like a credit adjustment.
    "/staff/clients/{account}/complimentary": {**STAFF_ONLY, "agent": 403},
    "/quotes/request/itsupport-team-tickets": {"anonymous": 200, "client": 200, "staff": 200},
    # A visitor's quote: whoever holds the link mailed to the address that asked.
    "/quotes/{token}": {"anonymous": 200, "client": 200, "staff": 200},
}
POSTS = {
    # No payment method, no one-time token: said on the page.
    "/portal/quotes/{quote}/accept": {"anonymous": "login", "client": 422, "another": 404, "staff": 403},
    "/staff/quotes/{quote}": {**STAFF_ONLY, "staff": 422},
    "/staff/quotes/{quote}/withdraw": {**STAFF_ONLY, "staff": "/staff/quotes"},
    "/staff/clients/{account}/orders/new": {**STAFF_ONLY, "staff": 422},
    "/staff/clients/{account}/complimentary": {**STAFF_ONLY, "staff": 422, "agent": 403},
    # A client's request needs nothing typed (the pooled bundle's least quantity, for their account).
    "/quotes/request/itsupport-team-tickets": {"anonymous": 422, "client": "/portal/quotes/{next}", "staff": 403},
    "/quotes/{token}": {"anonymous": 422, "client": 422, "staff": 403},
}
COVERS = covers(PAGES, POSTS)


def judge(answer, wanted, cast) -> None:
    if wanted == "login":
        assert answer.status_code == 302 and answer.location.startswith("/login")
    elif isinstance(wanted, str):
        assert (answer.status_code, answer.location) == (302, wanted.format(**cast))
    else:
        assert answer.status_code == wanted


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url", sorted(PAGES))
def test_who_may_open_each_page(app, client, cast, url, role):
    client = signed_in(app, client, role)
    judge(client.get(url.format(**cast)), want(PAGES[url], role), cast)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url", sorted(POSTS))
def test_who_may_post_and_a_refused_post_writes_nothing(app, client, cast, url, role):
    client = signed_in(app, client, role)
    token = csrf_token(client, {"anonymous": "/login", "deactivated": "/login", "agent": "/staff/",
                                "admin": "/staff/"}.get(role, "/portal/"))
    before = snapshot(app)
    wanted = want(POSTS[url], role)
    judge(client.post(url.format(**cast), data={"csrf_token": token}), wanted, cast)
    if wanted in ("login", 403, 404, 422):
        assert snapshot(app) == before
