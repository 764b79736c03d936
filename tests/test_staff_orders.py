"""The staff page of orders awaiting a transfer or a cheque: search,
confirm (exact, short, over, twice), cancel, who may; the orders jobs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from checkout_support import EUR_IBAN, place
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from billing.ledger.models import Lot
from billing.orders import references
from billing.orders.models import Invoice, Order, OrderEvent, Payment
from common.extensions import db
from common.i18n import moment
from tests.conftest import login, post_form
from tests.smtp import smtp_server  # noqa: F401 - a fixture
from tests.test_security import snapshot


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    # SERVER_NAME: the jobs run outside any request, and their mails carry links.
    return {"PROVIDER_IBAN": EUR_IBAN, "SERVER_NAME": "forfait.example", **smtp_server.config}


@pytest.fixture
def order(app, people) -> dict:
    """An order of the owner's account waiting for its transfer of 510.00."""
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        placed, payment = place(db.session, owner)
        return {"id": placed.id, "payment": payment.id, "reference": placed.reference, "account": owner.account_id}


@pytest.fixture
def staff_client(app, people):
    client = app.test_client()
    login(client, people["staff"])
    return client


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def confirm(client, order: dict, amount: str, day: str | None = None):
    return post_form(client, f"/portal/staff/payments/{order['payment']}/confirm",
                     {"amount": amount, "received_on": day or today()})


def subjects(smtp_server, address: str = "owner@example.com") -> list[str]:  # noqa: F811
    return [mail["Subject"] for mail in smtp_server.to(address)]


def mail(smtp_server, subject: str, address: str = "owner@example.com"):  # noqa: F811
    """The one mail to ``address`` with ``subject`` (the order's own, "Your order N", comes first)."""
    [found] = [message for message in smtp_server.to(address) if message["Subject"] == subject]
    return found


def credited(app, order: dict) -> int:
    with app.app_context():
        return sum(b.net for b in ledger.balances(db.session, order["account"], now=datetime.now(UTC)))


def status(app, order: dict) -> str:
    with app.app_context():
        return db.session.get(Order, order["id"]).status


@pytest.mark.parametrize("search", ["", "{reference}", "{spaced}", "510.00", "510,00", "acme", "OWNER@example",
                                    "#{id}"])
def test_the_page_finds_the_order_by_reference_amount_or_client(staff_client, order, search):
    spaced = " ".join(re.findall(".{1,4}", order["reference"])).lower()
    query = search.format(reference=order["reference"], spaced=spaced, id=order["id"])

    page = text(staff_client.get("/portal/staff/orders", query_string={"q": query}))

    assert f'id="order-{order["id"]}"' in page, query


def test_a_search_that_matches_nothing_says_so(staff_client, order):
    page = text(staff_client.get("/portal/staff/orders", query_string={"q": "RF00 9999"}))
    assert f'id="order-{order["id"]}"' not in page and "No order matches “RF00 9999”." in page


def test_the_page_says_why_card_is_not_offered(staff_client, order):
    page = text(staff_client.get("/portal/staff/orders"))
    assert "Bank transfer</strong> — offered to clients" in page
    assert "Card</strong> — Not installed" in page or "No Stripe key" in page


@pytest.mark.parametrize("role", ["owner", "member"])
def test_clients_cannot_use_the_staff_page(app, people, order, role):
    client = app.test_client()
    login(client, people[role])
    before = snapshot(app)
    assert client.get("/portal/staff/orders").status_code == 403
    assert confirm(client, order, "510.00").status_code == 403
    assert post_form(client, f"/portal/staff/orders/{order['id']}/cancel", {"reason": "x"}).status_code == 403
    assert snapshot(app) == before


def test_the_exact_amount_credits_invoices_and_mails_the_invoice(app, staff_client, order, smtp_server):  # noqa: F811
    response = confirm(staff_client, order, "510.00")

    assert response.status_code == 302 and response.headers["Location"] == "/portal/staff/orders"
    assert status(app, order) == "paid" and credited(app, order) == 300
    assert f"Order {order['id']} is paid: credited and invoiced." in text(staff_client.get("/portal/staff/orders"))
    paid = mail(smtp_server, f"Payment received for order {order['id']}")
    [pdf] = list(paid.iter_attachments())
    assert pdf.get_filename() == "2026-0001.pdf" or pdf.get_filename().endswith("-0001.pdf")
    assert pdf.get_content().startswith(b"%PDF")


def test_an_agent_confirms_payments_too(app, order, smtp_server):  # noqa: F811
    """Agents work the desk and confirm payments (issue 14.1): the page and the confirmation are theirs."""
    from common.identity import accounts

    with app.app_context():
        accounts.create_staff(db.session, "Abe Agent", "agent@example.com", "correct horse battery staple",
                              role="agent")
    client = app.test_client()
    login(client, "agent@example.com")
    assert client.get("/portal/staff/orders").status_code == 200
    response = confirm(client, order, "510.00")
    assert response.status_code == 302 and status(app, order) == "paid"


def test_a_double_click_credits_once(app, staff_client, order, smtp_server):  # noqa: F811
    confirm(staff_client, order, "510.00")
    again = confirm(staff_client, order, "510.00")

    assert again.status_code == 302
    assert "already confirmed by Sam Staff: nothing changed" in text(staff_client.get("/portal/staff/orders"))
    assert credited(app, order) == 300
    assert subjects(smtp_server) == [f"Your order {order['id']}", f"Payment received for order {order['id']}"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Lot)) == 1
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 1


def test_a_short_payment_is_recorded_and_the_order_stays_open(app, staff_client, order):
    confirm(staff_client, order, "300")

    assert status(app, order) == "pending" and credited(app, order) == 0
    page = text(staff_client.get("/portal/staff/orders"))
    assert "€300.00 recorded; €210.00 still awaited." in page
    assert "€210.00" in page and "of €510.00" in page  # still listed, for the rest
    with app.app_context():
        rest = db.session.scalar(select(Payment).where(Payment.status == "pending"))
        event = db.session.scalar(select(OrderEvent).where(OrderEvent.kind == "payment"))
        assert rest.amount == 21000
        assert (event.amount, event.by.email) == (30000, "staff@example.com") and event.created_at is not None


def test_an_over_payment_is_recorded_credited_and_flagged(app, staff_client, order):
    confirm(staff_client, order, "520.00")

    assert status(app, order) == "paid" and credited(app, order) == 300
    page = text(staff_client.get("/portal/staff/orders"))
    assert "Flagged: more received than the total" in page and "€10.00 too much" in page


@pytest.mark.parametrize(
    "amount, day, message",
    [
        ("abc", None, "Enter an amount such as 425.00."),
        ("0", None, "The amount received must be more than zero."),
        ("510.001", None, "Enter a positive amount, with no more decimals than the currency has."),
        ("510.00", "2999-01-01", "The money cannot have arrived in the future."),
        ("510.00", "yesterday", "Enter the date as on the bank statement"),
    ],
)
def test_bad_confirmations_get_a_message_a_422_and_write_nothing(app, staff_client, order, amount, day, message):
    before = snapshot(app)

    response = confirm(staff_client, order, amount, day)

    assert response.status_code == 422 and message in text(response)
    assert snapshot(app) == before


def test_staff_cancel_with_a_reason_and_the_client_is_told(app, staff_client, order, smtp_server):  # noqa: F811
    before = snapshot(app)
    refused = post_form(staff_client, f"/portal/staff/orders/{order['id']}/cancel", {"reason": ""})
    assert refused.status_code == 422 and snapshot(app) == before

    done = post_form(staff_client, f"/portal/staff/orders/{order['id']}/cancel", {"reason": "Ordered twice"})

    assert done.status_code == 302 and status(app, order) == "cancelled"
    cancelled = mail(smtp_server, f"Your order {order['id']} is cancelled")
    assert "Ordered twice" in cancelled.get_body(preferencelist=("plain",)).get_content()
    assert f'id="order-{order["id"]}"' not in text(staff_client.get("/portal/staff/orders"))


def test_staff_cannot_cancel_an_order_that_received_money(app, staff_client, order, smtp_server):  # noqa: F811
    confirm(staff_client, order, "300")
    message = f"Order {order['id']} cannot be cancelled: €300.00 has already been received for it"
    page = text(staff_client.get(f"/portal/orders/{order['id']}"))
    assert message in page and f"/portal/staff/orders/{order['id']}/cancel" not in page  # no button that fails
    before = snapshot(app)

    refused = post_form(staff_client, f"/portal/staff/orders/{order['id']}/cancel", {"reason": "Client gave up"})

    assert refused.status_code == 422 and text(refused).count(message) == 1
    assert snapshot(app) == before and status(app, order) == "pending"
    assert f"Your order {order['id']} is cancelled" not in subjects(smtp_server)
    assert f'id="order-{order["id"]}"' in text(staff_client.get("/portal/staff/orders"))  # still awaiting the rest


def test_unknown_payments_and_orders_are_404(staff_client, order):
    assert confirm(staff_client, {"payment": 999}, "1").status_code == 404
    assert post_form(staff_client, "/portal/staff/orders/999/cancel", {"reason": "x"}).status_code == 404


# --- The jobs -------------------------------------------------------------------

def test_remind_then_cancel_overdue_each_once(app, order, runner, smtp_server):  # noqa: F811
    with app.app_context():
        placed = db.session.get(Order, order["id"])
        placed.created_at = datetime.now(UTC) - timedelta(days=8)
        db.session.commit()

    first = runner.invoke(args=["orders", "remind"])
    again = runner.invoke(args=["orders", "remind"])
    assert first.exit_code == 0 and first.output == f"{order['id']}\towner@example.com\n"
    assert again.exit_code == 0 and again.output == ""
    assert runner.invoke(args=["orders", "cancel-overdue"]).output == ""  # 8 days < 14

    with app.app_context():
        db.session.get(Order, order["id"]).created_at = datetime.now(UTC) - timedelta(days=15)
        db.session.commit()
    cancelled = runner.invoke(args=["orders", "cancel-overdue"])
    assert cancelled.output == f"{order['id']}\towner@example.com\n"
    assert runner.invoke(args=["orders", "cancel-overdue"]).output == ""
    assert status(app, order) == "cancelled"

    assert subjects(smtp_server) == [f"Your order {order['id']}",
                                     f"Reminder: order {order['id']} is waiting for your payment",
                                     f"Your order {order['id']} is cancelled"]
    with app.app_context():
        assert db.session.get(Order, order["id"]).cancel_reason == "No payment arrived within 14 days."


def test_a_partly_paid_order_is_reminded_once_and_never_cancelled_by_the_jobs(app, staff_client, order, runner,
                                                                            smtp_server):  # noqa: F811
    confirm(staff_client, order, "300")
    with app.app_context():
        db.session.get(Order, order["id"]).created_at = datetime.now(UTC) - timedelta(days=30)
        db.session.commit()

    assert runner.invoke(args=["orders", "remind"]).output == f"{order['id']}\towner@example.com\n"
    assert runner.invoke(args=["orders", "remind"]).output == ""
    assert runner.invoke(args=["orders", "cancel-overdue"]).output == ""

    assert status(app, order) == "pending"
    page = text(staff_client.get("/portal/staff/orders"))
    assert f'id="order-{order["id"]}"' in page and "of €510.00" in page
    assert subjects(smtp_server) == [f"Your order {order['id']}",
                                     f"Part of the payment for order {order['id']} received",
                                     f"Reminder: order {order['id']} is waiting for your payment"]


def test_the_jobs_refuse_to_run_without_knowing_the_sites_address(app, order, runner):
    app.config["SERVER_NAME"] = None
    before = snapshot(app)
    result = runner.invoke(args=["orders", "remind"])
    assert result.exit_code == 2 and "SERVER_NAME is not set" in result.output
    assert snapshot(app) == before


# --- Issue 12.5: the staff pages say what exists and show what was confirmed --

@pytest.mark.parametrize("lang, desk, promise", [("en", "Ticket desk", "adjust credit"),
                                                 ("fr", "Gestion des tickets", "ajuster le crédit")])
def test_the_staff_home_offers_only_pages_that_exist(app, staff_client, people, lang, desk, promise):
    post_form(staff_client, "/language", {"lang": lang, "next": "/staff/"})
    page = text(staff_client.get("/staff/"))
    main = page.split('<main id="main"', 1)[1]
    assert promise not in main and "catalog" not in main.split("</hgroup>", 1)[1].split("<a")[0]
    assert f'<a class="hub-card" href="/desk/">\n      <strong>{desk}</strong>' in main
    for href in re.findall(r'href="(/[^"]*)"', main):
        assert staff_client.get(href).status_code == 200, href


def recently_confirmed(staff_client, search: str = "") -> str:
    page = text(staff_client.get("/portal/staff/orders", query_string={"q": search} if search else {}))
    return page.split('<article id="confirmed">', 1)[1].split("</article>", 1)[0]


def test_the_payments_page_lists_what_was_confirmed_by_whom_and_when(app, staff_client, order):
    assert "No payment confirmed yet." in recently_confirmed(staff_client)
    assert confirm(staff_client, order, "510.00").status_code == 302
    with app.test_request_context():
        payment = db.session.get(Payment, order["payment"])
        when = moment(payment.confirmed_at)  # on the provider's clock, as the page reads it
    section = recently_confirmed(staff_client)
    assert f'id="confirmed-{order["payment"]}"' in section
    assert "€510.00" in section and "by Sam Staff" in section and when in section and "Acme" in section
    spaced = " ".join(re.findall(".{1,4}", order["reference"]))
    for search in ("acme", "owner@example", spaced, order["reference"].lower()):
        assert f'id="confirmed-{order["payment"]}"' in recently_confirmed(staff_client, search), search
    assert "No confirmed payment matches “Nobody”." in recently_confirmed(staff_client, "Nobody")
    # Still awaited orders are not "confirmed", and this one is no longer awaited.
    assert f'id="order-{order["id"]}"' not in text(staff_client.get("/portal/staff/orders"))


def test_the_confirmed_payments_in_french(app, staff_client, order):
    confirm(staff_client, order, "510.00")
    post_form(staff_client, "/language", {"lang": "fr", "next": "/portal/staff/orders"})
    section = recently_confirmed(staff_client)
    assert "Confirmés récemment" in section and "par Sam Staff" in section and "510,00\u00a0€" in section


def test_a_short_payment_tells_the_client_what_remains_and_how_to_pay_it(app, staff_client, order,
                                                                        smtp_server):  # noqa: F811
    confirm(staff_client, order, "300")

    told = mail(smtp_server, f"Part of the payment for order {order['id']} received")
    body = told.get_body(("plain",)).get_content()
    with app.app_context():
        reference = references.pretty(db.session.get(Order, order["id"]).reference)
    assert f"We have received €300.00 for your order {order['id']}" in body
    assert f"€210.00 is still awaited, reference {reference}" in body
