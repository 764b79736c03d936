"""The quote pages: a visitor or a client asks from the pack's page, staff
price and send, the mail links to the quote, the visitor opens an account
on the quote's page and accepts, the order is paid like any other. Bad
input gets a message and a 4xx with nothing written."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path

import pytest
from checkout_support import EUR_IBAN
from sqlalchemy import func, select

from billing import clock
from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from billing.orders.models import Order, Payment
from billing.quotes.models import Quote
from common.extensions import db
from tests.conftest import PASSWORD, csrf_token, form_token, login, post_form
from tests.test_security import snapshot


@pytest.fixture
def app_config() -> dict:
    return {"PROVIDER_IBAN": EUR_IBAN}


@pytest.fixture
def presets(app):
    with app.app_context():
        for name in ("itsupport", "webservice", "demo"):
            load_preset(db.session, name)


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def mails(app, to: str) -> list:
    found = [message_from_bytes(path.read_bytes(), policy=policy.default)
             for path in sorted(Path(app.config["MAIL_FOLDER"]).glob("*.eml"))]
    return [m for m in found if to in m["To"]]


def link_in(message, path: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    found = re.findall(r"https?://\S*" + re.escape(path) + r"\S*", body)
    assert found, body
    return found[-1].split("localhost", 1)[1]


VISITOR = {"name": "Ines IT", "email": "ines@example.com", "company": "Helpdesk SARL", "country": "FR",
           "quantity": "20", "message": "Twenty users, one pool"}
ASK = "/quotes/request/itsupport-team-tickets"


def quote_of(app, email: str) -> Quote:
    with app.app_context():
        found = db.session.scalar(select(Quote).where(Quote.email == email).order_by(Quote.id.desc()))
        db.session.expunge_all()
        return found


def send(staff, quote_id: int, terms: dict, token: str | None = None):
    """Staff send the quote's form as shown (with its one-time token), with ``terms`` typed in."""
    path = f"/staff/quotes/{quote_id}"
    return post_form(staff, path, {**terms, "token": token or form_token(staff, path)})


def test_the_storefront_card_and_page_lead_to_the_request_form(client, presets):
    catalogue = text(client.get("/"))
    assert 'href="/quotes/request/itsupport-team-tickets"' in catalogue
    assert 'href="/quotes/request/webservice-12h"' in catalogue and "mailto:" not in catalogue.split("<main")[1]
    page = text(client.get("/packs/itsupport-team-tickets"))
    assert 'href="/quotes/request/itsupport-team-tickets"' in page
    form = text(client.get(ASK))
    assert 'name="email"' in form and 'name="quantity"' in form and 'name="message"' in form
    assert client.get("/quotes/request/demo-hours-5").status_code == 404  # it has a price


def test_a_visitor_gets_the_same_answer_whether_the_email_is_known(app, client, presets, people):
    known = post_form(client, ASK, {**VISITOR, "email": people["owner"]})
    unknown = post_form(client, ASK, VISITOR)
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"] == f"{ASK}/sent"
    assert text(client.get(known.headers["Location"])).count("your request is sent") == 1
    assert quote_of(app, people["owner"]).account_id is None  # a visitor's request binds to nothing


def test_the_same_request_form_sent_twice_asks_once_and_answers_the_same(app, client, presets, people):
    """A double click on Send my request: one request, one mail to staff, and the
    second answer is the same confirmation."""
    data = {**VISITOR, "token": form_token(client, ASK)}
    first, again = post_form(client, ASK, data), post_form(client, ASK, data)
    assert first.status_code == again.status_code == 302 and first.location == again.location == f"{ASK}/sent"
    owner = app.test_client()
    login(owner, people["owner"])
    path = "/quotes/request/webservice-12h"
    data = {"message": "Our shop site", "token": form_token(owner, path)}
    first, again = post_form(owner, path, data), post_form(owner, path, data)
    assert first.status_code == again.status_code == 302 and first.location == again.location
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Quote)) == 2
    assert len(mails(app, people["staff"])) == 2
    # The visitor's form, sent by someone logged in, is not their request.
    refused = post_form(owner, ASK, {"token": data["token"]})
    assert refused.status_code == 422 and "This form has expired" in text(refused)


def test_a_request_form_without_its_token_is_refused_with_a_fresh_form(app, client, presets, people):
    before = snapshot(app)
    for token in (None, "", "stale", "Z" * 32):
        data = VISITOR if token is None else {**VISITOR, "token": token}
        refused = client.post(ASK, data={**data, "csrf_token": csrf_token(client)})
        page = text(refused)
        assert refused.status_code == 422 and "This form has expired" in page
        assert re.search(r'name="token" type="hidden" value="[0-9a-f]{32}"', page) and 'value="Ines IT"' in page
    assert snapshot(app) == before


def test_bad_requests_say_why_and_write_nothing(app, client, presets):
    before = snapshot(app)
    for change, field in [({"quantity": "19"}, "quantity"), ({"quantity": "abc"}, "quantity"),
                          ({"email": "not-an-email"}, "email"), ({"name": ""}, "name"),
                          ({"message": "x" * 2001}, "message")]:
        response = post_form(client, ASK, {**VISITOR, **change})
        assert response.status_code == 422, change
        assert f'id="{field}-note"' in text(response), change
    assert snapshot(app) == before


def test_staff_price_it_the_visitor_signs_up_on_the_quote_and_pays_by_transfer(app, client, presets, people):
    assert post_form(client, ASK, VISITOR).status_code == 302
    quote = quote_of(app, "ines@example.com")
    staff = app.test_client()
    login(staff, people["staff"])
    assert f"/staff/quotes/{quote.id}" in text(staff.get("/staff/quotes"))
    page = text(staff.get(f"/staff/quotes/{quote.id}"))
    assert "Twenty users, one pool" in page and 'value="20"' in page
    refused = send(staff, quote.id, {"unit_price": "-3", "quantity": "20", "valid_until": "2099-01-01"})
    assert refused.status_code == 422 and 'id="unit_price-note"' in text(refused)
    until = (clock.now().date() + timedelta(days=30)).isoformat()
    sent = send(staff, quote.id, {"unit_price": "38", "quantity": "20", "validity_months": "12",
                                  "valid_until": until, "note": "Includes the kick-off call"})
    assert sent.status_code == 302

    [mail] = mails(app, "ines@example.com")
    assert "760.00" in mail.get_body(preferencelist=("plain",)).get_content().replace(",", ".").replace("\u202f", "")
    path = link_in(mail, "/quotes/")
    page = text(client.get(path))
    assert "€760.00" in page and "20 tickets" in page and "Includes the kick-off call" in page
    assert 'name="account-password"' in page and 'value="ines@example.com"' in page

    bad = post_form(client, path, {"method": "transfer", "account-password": "short"})
    assert bad.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "ines@example.com")) is None
    token = re.search(r'name="token" value="([0-9a-f]{32})"', text(client.get(path))).group(1)
    signup = {"account-organisation": "Helpdesk SARL", "account-name": "Ines IT", "account-email": "ines@example.com",
              "account-password": PASSWORD, "account-confirm": PASSWORD, "account-language": "en",
              "account-country": "FR", "method": "transfer", "token": token}
    accepted = post_form(client, path, signup)
    assert accepted.status_code == 302 and accepted.headers["Location"].startswith("/portal/orders/")
    again = post_form(client, path, {"method": "transfer", "token": token})  # logged in now: a second click
    assert again.status_code == 302 and again.headers["Location"] == accepted.headers["Location"]
    assert client.get(path).headers["Location"] == f"/portal/quotes/{quote.id}"  # the link, now it is theirs
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
        order = db.session.scalar(select(Order))
        payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id))
        assert (order.total, order.quantity, payment.status) == (76000, 20, "pending")
    order_page = text(client.get(accepted.headers["Location"]))
    assert "€760.00" in order_page

    confirm = post_form(staff, f"/portal/staff/payments/{payment.id}/confirm",
                        {"amount": "760.00", "received_on": clock.now().date().isoformat()})
    assert confirm.status_code == 302
    with app.app_context():
        ines = db.session.scalar(select(User).where(User.email == "ines@example.com"))
        assert [(b.unit, b.units) for b in ledger.balances(db.session, ines.account_id, now=clock.now())] == [
            ("ticket", 20)]
    assert "20 tickets" in text(client.get("/portal/"))
    assert "Accepted" in text(client.get(f"/portal/quotes/{quote.id}"))


def test_the_same_send_form_sent_twice_mails_one_quote_whose_link_works(app, client, presets, people):
    """A double click on Send: one mail, and its link is the quote's (a second
    sending would have drawn a new link and broken the first)."""
    assert post_form(client, ASK, VISITOR).status_code == 302
    quote = quote_of(app, "ines@example.com")
    staff = app.test_client()
    login(staff, people["staff"])
    token = form_token(staff, f"/staff/quotes/{quote.id}")
    terms = {"unit_price": "38", "quantity": "20", "valid_until": (clock.now().date() + timedelta(days=9)).isoformat()}
    first, again = send(staff, quote.id, terms, token), send(staff, quote.id, terms, token)
    assert first.status_code == again.status_code == 302 and first.location == again.location
    assert "already sent" in text(staff.get(again.location))
    [mail] = mails(app, "ines@example.com")
    assert "€760.00" in text(client.get(link_in(mail, "/quotes/")))
    # Sent again on purpose, from a new form, with new terms: a new mail.
    assert send(staff, quote.id, {**terms, "unit_price": "36"}).status_code == 302
    assert len(mails(app, "ines@example.com")) == 2


def test_a_send_form_with_a_stale_token_is_refused_and_writes_nothing(app, client, presets, people):
    assert post_form(client, ASK, VISITOR).status_code == 302
    quote = quote_of(app, "ines@example.com")
    staff = app.test_client()
    login(staff, people["staff"])
    before = snapshot(app)
    terms = {"unit_price": "38", "quantity": "20", "valid_until": (clock.now().date() + timedelta(days=9)).isoformat()}
    for token in ("", "stale", "Z" * 32):
        refused = post_form(staff, f"/staff/quotes/{quote.id}", {**terms, "token": token})
        assert refused.status_code == 422 and "This form has expired" in text(refused)
    assert snapshot(app) == before


def test_a_client_asks_from_the_portal_and_accepts_once_even_clicking_twice(app, client, presets, people):
    login(client, people["owner"])
    asked = post_form(client, "/quotes/request/webservice-12h", {"message": "Our shop site"})
    assert asked.status_code == 302 and asked.headers["Location"].startswith("/portal/quotes/")
    path = asked.headers["Location"]
    quote = quote_of(app, people["owner"])
    assert "We are preparing your quote" in text(client.get(path))
    assert f'href="{path}"' in text(client.get("/portal/quotes"))
    staff = app.test_client()
    login(staff, people["staff"])
    until = (clock.now().date() + timedelta(days=10)).isoformat()
    assert send(staff, quote.id, {"unit_price": "600", "quantity": "1", "valid_until": until}).status_code == 302
    assert f"/portal/quotes/{quote.id}" in link_in(mails(app, people["owner"])[-1], "/portal/quotes/")
    page = text(client.get(path))
    assert "€651.00" in page and "12 months" in page
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    member = app.test_client()
    login(member, people["member"])
    first = post_form(client, f"{path}/accept", {"method": "cheque", "token": token})
    second = post_form(member, f"{path}/accept", {"method": "transfer", "token": "0" * 32})
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
        order = db.session.scalar(select(Order))
        assert (order.method, order.total, order.placed_by.email) == ("cheque", 65100, people["owner"])


def test_an_expired_quote_is_refused_clearly(app, client, presets, people):
    login(client, people["owner"])
    post_form(client, "/quotes/request/webservice-24h", {})
    quote = quote_of(app, people["owner"])
    with app.app_context():
        row = db.session.get(Quote, quote.id)
        row.status, row.unit_price, row.quantity = "sent", 100000, 1
        row.valid_until = clock.now().date() - timedelta(days=1)
        db.session.commit()
    page = text(client.get(f"/portal/quotes/{quote.id}"))
    assert "This quote expired on" in page and 'id="accept-quote"' not in page
    refused = post_form(client, f"/portal/quotes/{quote.id}/accept", {"method": "transfer", "token": "a" * 32})
    assert refused.status_code == 422 and "This quote expired on" in text(refused)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    # Every list names it expired too: the client's, staff's, and the account page.
    assert 'class="status status-expired"' in text(client.get("/portal/quotes"))
    staff = app.test_client()
    login(staff, people["staff"])
    assert 'class="status status-expired"' in text(staff.get("/staff/quotes"))
    account_id = account_of(app, people["owner"])[0]
    assert 'class="status status-expired"' in text(staff.get(f"/staff/clients/{account_id}"))


# --- Orders staff place ---------------------------------------------------------------

def account_of(app, email: str) -> tuple[int, int]:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        return user.account_id, user.id


def test_staff_take_a_phone_order_for_a_member_priced_on_request(app, client, presets, people):
    account_id, member_id = account_of(app, people["member"])
    login(client, people["staff"])
    path = f"/staff/clients/{account_id}/orders/new"
    assert f'href="{path}"' in text(client.get(f"/staff/clients/{account_id}"))
    page = text(client.get(path))
    assert "<h1>Take an order</h1>" in page and f'action="{path}" id="phone-order"' in page
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    order = {"buyer": str(member_id), "pack": "itsupport-team-tickets", "quantity": "20", "method": "transfer",
             "token": token}
    before = snapshot(app)
    missing = post_form(client, path, order)  # priced on request: the price agreed is needed
    assert missing.status_code == 422 and 'id="unit_price-note"' in text(missing)
    assert post_form(client, path, {**order, "quantity": "5", "unit_price": "38"}).status_code == 422
    assert snapshot(app) == before
    placed = post_form(client, path, {**order, "unit_price": "38"})
    twice = post_form(client, path, {**order, "unit_price": "38"})
    assert placed.status_code == twice.status_code == 302 and placed.headers["Location"] == twice.headers["Location"]
    with app.app_context():
        [made] = db.session.scalars(select(Order)).all()
        assert (made.placed_by_id, made.total, made.quantity, made.method) == (member_id, 76000, 20, "transfer")
    mine = app.test_client()
    login(mine, people["member"])
    assert f"/portal/orders/{made.id}" in text(mine.get("/portal/orders"))


def test_a_complimentary_lot_needs_a_reason_and_reaches_balance_and_statement(app, client, presets, people):
    account_id, owner_id = account_of(app, people["owner"])
    login(client, people["staff"])
    path = f"/staff/clients/{account_id}/complimentary"
    token = re.search(r'name="token" value="([0-9a-f]{32})"', text(client.get(path))).group(1)
    grant = {"buyer": str(owner_id), "pack": "itsupport-ticket-1", "quantity": "1", "token": token}
    before = snapshot(app)
    refused = post_form(client, path, {**grant, "reason": ""})
    assert refused.status_code == 422 and 'id="reason-note"' in text(refused)
    assert snapshot(app) == before
    given = post_form(client, path, {**grant, "reason": "Sorry for Monday's outage"})
    assert post_form(client, path, {**grant, "reason": "Sorry for Monday's outage"}).status_code == 302
    assert given.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    owner = app.test_client()
    login(owner, people["owner"])
    assert "1 ticket" in text(owner.get("/portal/"))
    order_page = text(owner.get(given.headers["Location"]))
    assert "at no charge (Sorry for Monday's outage)" in order_page and "free trial" not in order_page
    statement = text(owner.get(f"/portal/accounts/{account_id}/statement"))
    assert "Complimentary" in statement and "Sorry for Monday's outage" in statement


def test_the_quote_link_opens_an_account_only_under_the_address_it_was_mailed_to(app, client, presets, people):
    assert post_form(client, ASK, {**VISITOR, "email": people["owner"]}).status_code == 302
    quote = quote_of(app, people["owner"])
    staff = app.test_client()
    login(staff, people["staff"])
    until = (clock.now().date() + timedelta(days=5)).isoformat()
    send(staff, quote.id, {"unit_price": "38", "quantity": "20", "valid_until": until})
    path = link_in(mails(app, people["owner"])[-1], "/quotes/")
    token = re.search(r'name="token" value="([0-9a-f]{32})"', text(client.get(path))).group(1)
    signup = {"account-organisation": "Someone", "account-name": "Some One", "account-email": "typed@example.com",
              "account-password": PASSWORD, "account-confirm": PASSWORD, "account-language": "en",
              "account-country": "FR", "method": "transfer", "token": token}
    before = snapshot(app)
    taken = post_form(client, path, signup)
    assert taken.status_code == 422 and f"An account already uses {people['owner']}" in text(taken)
    assert snapshot(app) == before  # no account under the typed address either
    login(client, people["owner"])
    accepted = post_form(client, path, {"method": "transfer", "token": token})
    assert accepted.status_code == 302 and accepted.headers["Location"].startswith("/portal/orders/")


def test_the_staff_quote_page_names_the_visitors_country_in_the_readers_language(app, client, presets, people):
    """The request's country reads "France" (or "Francia"), as the clients list writes it, not its code "FR"."""
    assert post_form(client, ASK, VISITOR).status_code == 302
    quote = quote_of(app, "ines@example.com")
    staff = app.test_client()
    login(staff, people["staff"])
    assert "<dd>France</dd>" in text(staff.get(f"/staff/quotes/{quote.id}"))
    assert post_form(staff, "/language", {"lang": "es"}).status_code == 302
    page = text(staff.get(f"/staff/quotes/{quote.id}"))
    assert "<dd>Francia</dd>" in page and "<dd>FR</dd>" not in page


def test_a_client_finds_their_quotes_from_their_account_home(app, client, presets, people):
    """A client told "you will find it under Quotes in your account" finds Quotes on the account's home, not
    only as a small link on the orders page."""
    login(client, people["owner"])
    asked = post_form(client, "/quotes/request/webservice-12h", {"message": "Our shop site"})
    assert asked.status_code == 302
    home = text(client.get("/portal/"))
    links = home[home.index('class="dashboard-links"'):home.index("</nav>", home.index('class="dashboard-links"'))]
    assert '<a href="/portal/quotes">Quotes</a>' in links
    assert asked.headers["Location"] in text(client.get("/portal/quotes"))


def test_the_account_page_lists_the_clients_quotes(app, client, presets, people):
    """Staff on the phone with a client see on the account's page the quotes it asked for, and open them."""
    login(client, people["owner"])
    assert post_form(client, "/quotes/request/webservice-12h", {"message": "Our shop site"}).status_code == 302
    with app.app_context():
        quote = db.session.scalar(select(Quote))
        account_id = quote.account_id
    staff = app.test_client()
    login(staff, people["staff"])
    page = text(staff.get(f"/staff/clients/{account_id}"))
    section = page[page.index('id="account-quotes"'):page.index("</article>", page.index('id="account-quotes"'))]
    assert f'href="/staff/quotes/{quote.id}"' in section and "Requested" in section


def test_the_staff_list_leads_from_a_clients_quote_to_the_clients_account(app, client, presets, people):
    """As the payments page does: the office manager pricing a client's request
    reaches its account (balance, orders) from the row; a visitor has none yet."""
    login(client, people["owner"])
    post_form(client, "/quotes/request/webservice-12h", {"message": "Our shop site"})
    assert post_form(app.test_client(), ASK, VISITOR).status_code == 302
    account_id, _user_id = account_of(app, people["owner"])
    staff = app.test_client()
    login(staff, people["staff"])
    page = text(staff.get("/staff/quotes"))
    assert f'href="/staff/clients/{account_id}"' in page
    assert page.count('href="/staff/clients/') == 1
