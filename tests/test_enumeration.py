"""Nobody learns from our answers who has an account (issue 13, point 10):
sign-up, invitations and password resets answer alike for a known and an
unknown address; the person who owns the address is told by mail."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from checkout_support import EUR_IBAN
from sqlalchemy import event, func, select

from billing.accounts.models import Account, User
from billing.catalogue.offers import load_preset
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, form_token, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.stripe_server import SECRET_KEY, WEBHOOK_SECRET, stripe_server  # noqa: F401 (a fixture)


@pytest.fixture
def app_config(smtp_server, request):  # noqa: F811 (the fixture imported above)
    return {**smtp_server.config, **getattr(request, "param", {})}


def signup_data(email: str) -> dict:
    return {"organisation": "Another shop", "name": "Someone", "email": email, "password": "a long enough secret",
            "confirm": "a long enough secret", "language": "en", "country": "FR"}


def page_after(client, response) -> tuple[int, str, str]:
    """What the person sees: the answer, where it leads, the page there."""
    location = response.headers.get("Location", "")
    page = client.get(location).get_data(as_text=True) if location else ""
    # The CSRF tokens (signed, so different in every session) aside.
    return response.status_code, location, re.sub(r"[\w-]{20,}\.[\w-]+\.[\w-]+", "TOKEN", page)


def test_signing_up_with_a_known_address_looks_the_same_and_mails_its_owner(app, people, smtp_server):  # noqa: F811
    known, new = app.test_client(), app.test_client()

    seen_known = page_after(known, post_form(known, "/signup", signup_data(people["owner"])))
    seen_new = page_after(new, post_form(new, "/signup", signup_data("newcomer@example.com")))

    assert seen_known[:2] == seen_new[:2] == (302, "/signup/sent")
    assert seen_known[2].replace(people["owner"], "EMAIL") == seen_new[2].replace("newcomer@example.com", "EMAIL")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 2  # Acme and the newcomer's
    [told] = smtp_server.to(people["owner"])
    assert told["Subject"] == "You already have an account"
    assert "tried to sign up with owner@example.com" in told.get_body(preferencelist=("plain",)).get_content()
    assert smtp_server.last_link(people["owner"], "/password/reset/")
    [welcome] = smtp_server.to("newcomer@example.com")
    assert welcome["Subject"] == "Please confirm your email address"


def test_inviting_an_address_with_access_elsewhere_is_answered_like_any_other(app, client, people, smtp_server):  # noqa: F811
    with app.app_context():
        accounts.register(db.session, "Other shop", "Otto Other", "otto@example.com", PASSWORD, "en", "FR")
    login(client, people["owner"])

    elsewhere = post_form(client, "/portal/people/invitations", {"email": "otto@example.com", "role": "member"})
    fresh = post_form(client, "/portal/people/invitations", {"email": "fresh@example.com", "role": "member"})

    assert (elsewhere.status_code, elsewhere.headers["Location"]) == (fresh.status_code, fresh.headers["Location"])
    link = urlsplit(smtp_server.last_link("otto@example.com", "/invitations/")).path
    page = app.test_client().get(link).get_data(as_text=True)
    assert "otto@example.com already has access to Forfait with another account" in page
    with app.app_context():
        otto = db.session.scalar(select(User).where(User.email == "otto@example.com"))
        assert otto.account.name == "Other shop"


def statements_on_this_thread(app, action) -> int:
    """How many SQL statements ``action`` runs on the calling thread, which
    is the request's with the test client: the work the answer waits for.
    ``action`` closes the response, as a server does once it has sent it:
    the work left for after the answer starts then."""
    me, count = threading.get_ident(), [0]

    def counted(*args):
        if threading.get_ident() == me:
            count[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", counted)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count[0]


@pytest.mark.parametrize("app_config", [{"MAIL_DELIVER_IN_BACKGROUND": True}], indirect=True)
def test_a_reset_asked_for_a_known_or_an_unknown_address_does_the_same_work_before_answering(
        app, people, smtp_server):  # noqa: F811
    def ask(email):
        client = app.test_client()
        client.get("/password/forgot")
        return lambda: post_form(client, "/password/forgot", {"email": email}).close()

    known = statements_on_this_thread(app, ask(people["member"]))
    unknown = statements_on_this_thread(app, ask("nobody@example.com"))

    assert known == unknown
    deadline = time.monotonic() + 60  # the sender thread on a loaded machine
    while not smtp_server.to(people["member"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.last_link(people["member"], "/password/reset/")
    assert not smtp_server.to("nobody@example.com")


@pytest.mark.parametrize("app_config", [{"MAIL_DELIVER_IN_BACKGROUND": True}], indirect=True)
def test_a_wrong_password_for_a_staff_address_does_the_same_work_before_answering_as_for_any_other(
        app, people, smtp_server):  # noqa: F811
    """Staff's failed logins are logged (issue 13.13), after the answer: a
    failure on a staff address must not take longer than on another, which
    would tell who is staff."""
    from billing.accounts.models import LoginEvent

    def fail(email):
        client = app.test_client()
        client.get("/login")
        return lambda: post_form(client, "/login", {"email": email, "password": "a wrong guess"}).close()

    staff = statements_on_this_thread(app, fail(people["staff"]))
    client = statements_on_this_thread(app, fail(people["owner"]))
    nobody = statements_on_this_thread(app, fail("nobody@example.com"))

    assert staff == client == nobody
    deadline = time.monotonic() + 60  # the sender thread on a loaded machine
    with app.app_context():
        while not db.session.scalars(select(LoginEvent)).all():
            assert time.monotonic() < deadline, "the failure was not logged after the answer"
            time.sleep(0.05)
            db.session.rollback()
        [logged] = db.session.scalars(select(LoginEvent)).all()
        assert (logged.email, logged.outcome, logged.address) == (people["staff"], "wrong password", "127.0.0.1")


# --- Checkout's sign-up ---------------------------------------------------------

def checkout_signup(email: str, method: str = "transfer") -> dict:
    return {"method": method, "total": "51000", "account-organisation": "Another shop", "account-name": "Someone",
            "account-email": email, "account-password": "a long enough secret",
            "account-confirm": "a long enough secret", "account-language": "en", "account-country": "FR"}


@pytest.fixture
def shop(app, stripe_server):  # noqa: F811
    app.config.update(PROVIDER_IBAN=EUR_IBAN, STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                      STRIPE_API_BASE=stripe_server.url)
    with app.app_context():
        load_preset(db.session, "demo")
    return app


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model)) for model in (Account, User, Order))


@pytest.mark.parametrize("method", ["transfer", "card"])
def test_ordering_with_a_known_address_looks_the_same_orders_nothing_and_mails_its_owner(
        shop, people, smtp_server, stripe_server, method):  # noqa: F811
    app = shop
    known, new = app.test_client(), app.test_client()
    before = counts(app)

    def order(client, email):
        return page_after(client, post_form(client, "/checkout/demo-hours-5", checkout_signup(email, method)))

    seen_known, seen_new = order(known, people["owner"]), order(new, "newcomer@example.com")

    assert seen_known[:2] == seen_new[:2] == (302, "/checkout/demo-hours-5/sent")
    assert seen_known[2].replace(people["owner"], "EMAIL") == seen_new[2].replace("newcomer@example.com", "EMAIL")
    assert "Open the link in it to confirm your address and continue your order of 5 hours" in seen_new[2]
    # No order, and nothing asked of Stripe, before someone proves the address is theirs.
    assert counts(app) == (before[0] + 1, before[1] + 1, 0)  # the newcomer's account, unconfirmed
    assert not stripe_server.created_sessions()
    # Neither is logged in: the mail's link is what logs in.
    for client in (known, new):
        assert client.get("/portal/").status_code == 302

    [told] = smtp_server.to(people["owner"])
    assert told["Subject"] == "You already have an account: log in to order"
    body = told.get_body(preferencelist=("plain",)).get_content()
    assert "tried to order 5 hours with owner@example.com" in body and "nothing was ordered" in body
    assert smtp_server.last_link(people["owner"], "/password/reset/")
    [welcome] = smtp_server.to("newcomer@example.com")
    assert welcome["Subject"] == "Please confirm your email address"

    # The owner's link: log in, and the checkout is back as the visitor filled it in.
    login_link = urlsplit(smtp_server.last_link(people["owner"], "/login?next="))
    page = known.get(f"{login_link.path}?{login_link.query}")
    assert page.status_code == 200
    response = post_form(known, f"{login_link.path}?{login_link.query}",
                         {"email": people["owner"], "password": PASSWORD,
                          "next": dict(parse_qsl(login_link.query))["next"]})
    assert response.headers["Location"] == f"/checkout/demo-hours-5?method={method}"
    form = known.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(rf'value="{method}"\s+required\s+checked', form)
    placed = post_form(known, response.headers["Location"], {"method": method, "total": "51000"})
    assert placed.status_code == 302
    if method == "card":  # on to Stripe's page, for this order
        assert placed.headers["Location"].startswith(f"{stripe_server.url}/pay/")
    with app.app_context():
        [order] = db.session.scalars(select(Order)).all()
        assert order.placed_by.email == people["owner"]


def test_a_newcomer_paying_by_card_confirms_the_address_then_goes_to_stripe(shop, stripe_server, smtp_server):  # noqa: F811
    app, client = shop, shop.test_client()
    sent = post_form(client, "/checkout/demo-hours-5", checkout_signup("newcomer@example.com", "card"))
    assert sent.headers["Location"] == "/checkout/demo-hours-5/sent"

    link = urlsplit(smtp_server.last_link("newcomer@example.com", "/verify/"))
    back = client.get(f"{link.path}?{link.query}")
    assert back.headers["Location"] == "/checkout/demo-hours-5?method=card"
    placed = post_form(client, back.headers["Location"], {"method": "card", "total": "51000"})

    assert placed.headers["Location"].startswith(f"{stripe_server.url}/pay/")
    with app.app_context():
        [order] = db.session.scalars(select(Order)).all()
        assert (order.placed_by.email, order.placed_by.email_verified_at is not None) == ("newcomer@example.com", True)


@pytest.mark.parametrize("who", ["owner", "staff", "removed"])
def test_the_same_checkout_sign_up_sent_twice_answers_alike_and_mails_once(shop, people, smtp_server, who):  # noqa: F811
    """A double click on "Continue" (one form, one token): the same page
    twice, one mail; the second time the address is the account the first
    one opened, and its owner is not told someone tried it."""
    app, client = shop, shop.test_client()
    email = {"owner": "newcomer@example.com", "staff": people["staff"], "removed": people["member"]}[who]
    if who == "removed":
        with app.app_context():
            db.session.scalar(select(User).where(User.email == email)).removed_at = func.now()
            db.session.commit()
    token = form_token(client, "/checkout/demo-hours-5")
    data = {**checkout_signup(email), "token": token}

    first = page_after(client, post_form(client, "/checkout/demo-hours-5", data))
    again = page_after(client, post_form(client, "/checkout/demo-hours-5", data))

    assert first == again and first[:2] == (302, "/checkout/demo-hours-5/sent")
    # Staff do not order and a removed person has no account to log in to: nobody is mailed.
    assert len(smtp_server.to(email)) == (1 if who == "owner" else 0)
    if who == "owner":
        assert smtp_server.to(email)[0]["Subject"] == "Please confirm your email address"
    assert counts(app)[2] == 0


SIGN_UPS = {"/signup": signup_data, "/checkout/demo-hours-5": checkout_signup}


@pytest.mark.parametrize("app_config", [{"MAIL_DELIVER_IN_BACKGROUND": True}], indirect=True)
@pytest.mark.parametrize("path", SIGN_UPS)
def test_a_sign_up_does_the_same_work_before_answering_for_a_known_or_a_new_address(
        shop, people, smtp_server, path, monkeypatch):  # noqa: F811
    """The account, or the owner's mail, is made after the answer (the
    password hashed there too): the request runs the same statements and
    hashes nothing, whichever the address."""
    app = shop
    hashed = []
    hash_password = accounts.PasswordHasher.hash
    me = threading.get_ident()

    def counted_hash(self, password, **kwargs):
        if threading.get_ident() == me:
            hashed.append(password)
        return hash_password(self, password, **kwargs)

    def ask(email):
        client = app.test_client()
        client.get(path)
        return lambda: post_form(client, path, SIGN_UPS[path](email)).close()

    monkeypatch.setattr(accounts.PasswordHasher, "hash", counted_hash)
    known = statements_on_this_thread(app, ask(people["owner"]))
    new = statements_on_this_thread(app, ask("newcomer@example.com"))

    assert known == new and hashed == []
    deadline = time.monotonic() + 60  # the sender thread on a loaded machine
    while not (smtp_server.to(people["owner"]) and smtp_server.to("newcomer@example.com")):
        assert time.monotonic() < deadline, "the mails did not go after the answers"
        time.sleep(0.05)
    assert smtp_server.to(people["owner"])[0]["Subject"].startswith("You already have an account")
    assert smtp_server.to("newcomer@example.com")[0]["Subject"] == "Please confirm your email address"
