"""Who may use the shop, the sign-up and login pages, the links mailed to a
person and one's own login settings (issue 14.5): every URL × anonymous, a
member and the owner of Acme, the owner of another account, an agent, an
admin and a staff member deactivated once logged in. Most are everybody's:
the matrix proves what each audience gets there, and that a refused POST
writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.access import EMAIL, World, covers, matrix
from tests.conftest import PASSWORD

NOW = datetime.now(UTC)
EVERYBODY = {"anonymous": 200}
LOGGED_IN = {"anonymous": "login", "client": 200, "staff": 200}
# A page for somebody not logged in: a logged-in person is sent on to their portal.
LOGGED_OUT = {"anonymous": 200, "client": "/portal/", "staff": "/portal/"}
PAGES = {
    "/": EVERYBODY,
    "/packs/demo-hours-5": EVERYBODY,
    "/estimate?pack=demo-hours-5&minutes=45": EVERYBODY,
    "/service/itsupport": EVERYBODY,
    "/checkout/demo-hours-5": EVERYBODY,
    "/checkout/demo-trial": EVERYBODY,
    "/quotes/request/itsupport-team-tickets/sent": EVERYBODY,
    # Said only to the visitor who just ordered or signed up, from their session.
    "/checkout/demo-hours-5/sent": {"anonymous": "/checkout/demo-hours-5"},
    "/signup/sent": {"anonymous": "/signup"},
    # Stripe's return names its session; without one there is nothing to show.
    "/stripe/return": {"anonymous": 404},
    "/login": LOGGED_OUT,
    "/signup": LOGGED_OUT,
    "/login/code": {"anonymous": "/login"},
    "/password/forgot": EVERYBODY,
    # A link mailed to one person: whoever holds it.
    "/password/reset/{reset}": EVERYBODY,
    "/verify/{verify}": {"anonymous": "/portal/"},
    # Anybody logged in under another address is told the invitation is not theirs.
    "/invitations/{invitation}": {"anonymous": 200, "client": 409, "staff": 409},
    "/account/security": LOGGED_IN,
}
# A POST with only the session's CSRF token: a form that needs fields
# answers 422, an action that needs none is carried out.
POSTS = {
    "/login": {"anonymous": 422, "client": "/portal/", "staff": "/portal/"},
    "/signup": {"anonymous": 422, "client": "/portal/", "staff": "/portal/"},
    "/login/code": {"anonymous": "/login"},
    "/password/forgot": {"anonymous": 422},
    "/password/reset/{reset}": {"anonymous": 422},
    "/logout": {"anonymous": "/"},
    "/language": {"anonymous": 400},
    "/invitations/{invitation}": {"anonymous": 422, "client": 409, "staff": 409},
    # No quantity, no payment method: said on the form.
    "/checkout/demo-hours-5": {"anonymous": 422, "staff": 403},
    # Each account's own trial: nothing to fill in. Staff buy nothing.
    "/checkout/demo-trial/trial": {"anonymous": "login", "client": "/portal/orders/{order}", "staff": 403},
    "/account/security": {"anonymous": "login", "client": 422, "staff": 422},
    "/account/security/logout-everywhere": {"anonymous": "login", "client": "/login", "staff": "/login"},
    "/verify/resend": {"anonymous": "login", "client": "/portal/", "staff": "/portal/"},
    # A second factor is for staff; clients are refused it.
    "/account/security/second-factor/start": {"anonymous": "login", "client": 403,
                                              "staff": "/account/security#second-factor"},
    "/account/security/second-factor/confirm": {"anonymous": "login", "client": 403, "staff": 422},
    "/account/security/second-factor/off": {"anonymous": "login", "client": 403, "staff": 422},
    # Stripe signs its deliveries: without the signature, nobody is heard.
    "/stripe/webhook": {"anonymous": 400},
}
COVERS = covers(PAGES, POSTS)
CONFIG = {"STRIPE_SECRET_KEY": "sk_test_access", "STRIPE_WEBHOOK_SECRET": "whsec_access"}


def make(app) -> dict:
    """The demo and IT support catalogues; the clients' addresses verified
    (the trial asks it); Vera, who has not verified hers, with the links
    mailed to her; Acme's invitation of Ivy."""
    with app.app_context():
        load_preset(db.session, "demo")
        load_preset(db.session, "itsupport")
        for audience in ("member", "owner", "another"):
            accounts.mark_email_verified(db.session, db.session.scalar(select(User).where(
                User.email == EMAIL[audience])))
        vera = accounts.register(db.session, "Vera Co", "Vera", "vera@example.com", PASSWORD, "en", "FR")
        owner = db.session.scalar(select(User).where(User.email == EMAIL["owner"]))
        _invitation, token = desk.invite(db.session, owner.account, owner, "ivy@example.com", "member", now=NOW,
                                         max_age=timedelta(hours=72))
        return {"reset": accounts.make_token(vera, accounts.RESET),
                "verify": accounts.make_token(vera, accounts.VERIFY), "invitation": token,
                "order": (db.session.scalar(select(func.max(Order.id))) or 0) + 1}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("visitor-access"), make, **CONFIG)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS)
