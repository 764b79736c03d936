"""Invoices and credit notes: gapless numbers per series and year, even
under 20 concurrent payments; immutable once issued; the PDF; who may see it."""

from __future__ import annotations

import re
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pytest
from checkout_support import EUR_IBAN, NOW, QR_IBAN, SELLER, both, client, confirm, place, session, staff  # noqa: F401
from sqlalchemy import func, select

from billing.orders import invoices
from billing.orders import services as orders
from billing.orders.models import ImmutableDocument, Invoice, Payment
from common.extensions import db
from tests.conftest import login


def test_numbers_run_per_year_and_per_series(session):
    _account, owner = client(session)
    numbers = []
    for day in (NOW, NOW + timedelta(days=1), datetime(2027, 1, 2, tzinfo=UTC)):
        _order, payment = place(session, owner)
        numbers.append(confirm(session, payment, now=day).order)
    issued = session.scalars(select(Invoice.number).order_by(Invoice.id)).all()
    assert issued == ["2026-0001", "2026-0002", "2027-0001"]

    note = invoices.issue_credit_note(session, numbers[0], 51000, "Refunded", seller=SELLER, key="refund-1", now=NOW)
    assert note.number == "CN-2026-0001" and note.corrects.number == "2026-0001"


@both
def test_the_invoice_copies_who_and_what_so_later_edits_change_nothing(session):
    account, owner = client(session)
    order, payment = place(session, owner, "demo-team-tickets", quantity=20)
    confirm(session, payment)
    invoice = session.scalar(select(Invoice))
    account.name = "Renamed Ltd"
    order.pack.price = 1
    session.commit()

    assert invoice.buyer_name.startswith("Acme") and invoice.buyer_email == owner.email
    assert (invoice.seller_name, invoice.seller_vat_id) == (SELLER.name, SELLER.vat_id)
    [line] = invoice.lines
    assert (line.quantity, line.unit_price, line.vat_rate_bp, line.net, line.vat, line.gross) == (
        20, 3800, 2000, 76000, 15200, 91200)
    assert line.description == "Team tickets (from 20)"


@both
def test_an_issued_invoice_cannot_be_changed_or_deleted(session):
    _account, owner = client(session)
    _order, payment = place(session, owner)
    confirm(session, payment)
    invoice = session.scalar(select(Invoice))

    invoice.gross = 1
    with pytest.raises(ImmutableDocument):
        session.flush()
    session.rollback()
    session.delete(invoice.lines[0])
    with pytest.raises(ImmutableDocument):
        session.flush()
    session.rollback()
    assert session.scalar(select(Invoice.gross)) == 51000


@both
def test_credit_notes_take_back_the_invoice_once_per_key_and_no_more(session):
    _account, owner = client(session)
    order, payment = place(session, owner)
    confirm(session, payment)

    part = invoices.issue_credit_note(session, order, 10000, "Goodwill", seller=SELLER, key="re_1", now=NOW)
    again = invoices.issue_credit_note(session, order, 10000, "Goodwill", seller=SELLER, key="re_1", now=NOW)
    assert again.id == part.id and (part.net, part.vat, part.gross) == (8333, 1667, 10000)
    with pytest.raises(invoices.InvoiceError):
        invoices.issue_credit_note(session, order, 41001, "Too much", seller=SELLER, key="re_2", now=NOW)
    rest = invoices.issue_credit_note(session, order, 41000, "Refund", seller=SELLER, key="re_3", now=NOW)

    assert rest.number == "CN-2026-0002" and order.status == "refunded"
    assert [e.kind for e in orders.events(session, order)][-2:] == ["credit_note", "credit_note"]


@both
@pytest.mark.parametrize("slug, iban, amount, line", [
    # Prices stated net: the line's unit price is the net credited.
    ("demo-hours-5", EUR_IBAN, 51000, (1, 42500, 42500, 8500, 51000)),
    ("demo-hours-5", EUR_IBAN, 10000, (1, 8333, 8333, 1667, 10000)),
    # Prices stated VAT included (CHF 950 at 8.1 %): the unit price is the gross credited.
    ("toopixel-36", QR_IBAN, 95000, (1, 95000, 87882, 7118, 95000)),
    ("toopixel-36", QR_IBAN, 10000, (1, 10000, 9251, 749, 10000)),
], ids=["net-whole", "net-part", "vat-included-whole", "vat-included-part"])
def test_a_credit_notes_line_states_its_unit_price_on_the_basis_of_the_invoices(session, slug, iban, amount, line):
    """Positive amounts, like the note's own net, VAT and gross: quantity × unit
    price gives the net (prices stated net) or the gross (VAT included)."""
    _account, owner = client(session)
    order, payment = place(session, owner, slug, iban=iban)
    confirm(session, payment)

    note = invoices.issue_credit_note(session, order, amount, "Refund", seller=SELLER, key=f"re-{slug}-{amount}",
                                      now=NOW)

    [stored] = note.lines
    assert (stored.quantity, stored.unit_price, stored.net, stored.vat, stored.gross) == line
    assert (note.net, note.vat, note.gross) == (stored.net, stored.vat, stored.gross)
    [invoice_line] = note.corrects.lines
    basis = stored.gross if order.price_includes_vat else stored.net
    assert stored.quantity * stored.unit_price == basis
    assert (stored.vat_rate_bp, invoice_line.vat_rate_bp) == (order.vat_rate_bp, order.vat_rate_bp)


def test_an_order_without_invoice_gets_no_credit_note(session):
    _account, owner = client(session)
    order, _payment = place(session, owner)
    with pytest.raises(invoices.InvoiceError, match="no invoice"):
        invoices.issue_credit_note(session, order, 100, "Refund", seller=SELLER, key="re_x", now=NOW)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_twenty_concurrent_payments_get_gapless_unique_numbers(app):
    """Twenty accounts pay at the same moment, each in its own session: the
    counter row lock queues them, and the numbers come out 1 to 20."""
    with app.app_context():
        payment_ids = []
        for _ in range(20):
            _account, owner = client(db.session)
            payment_ids.append(place(db.session, owner)[1].id)
    barrier = threading.Barrier(len(payment_ids))
    failures: list[BaseException] = []

    def pay(payment_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                confirm(db.session, db.session.get(Payment, payment_id))
            except BaseException as error:  # reported below: a thread's exception is lost otherwise
                failures.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=pay, args=(payment_id,)) for payment_id in payment_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    with app.app_context():
        sequences = db.session.scalars(select(Invoice.sequence).where(Invoice.kind == "invoice")).all()
        assert sorted(sequences) == list(range(1, 21))
        assert db.session.scalar(select(func.count(func.distinct(Invoice.number)))) == 20


# --- The PDF and who may see it -------------------------------------------------

def pdf_text(content: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=content, capture_output=True,
                          check=True).stdout.decode()


@pytest.fixture
def paid_invoice(app, people):
    """The owner's account paid an order; returns (invoice id, order id)."""
    from billing.accounts.models import User

    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        order, payment = place(db.session, owner, "demo-team-tickets", quantity=20)
        confirm(db.session, payment)
        return db.session.scalar(select(Invoice.id)), order.id


def test_the_invoice_pdf_says_who_what_vat_and_total(client, people, paid_invoice):
    invoice_id, _order_id = paid_invoice
    login(client, people["member"])  # any user of the account

    response = client.get(f"/portal/invoices/{invoice_id}.pdf")

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    for expected in ("Invoice 2026-0001", "Forfait Demo Support", "Acme", "owner@example.com",
                     "Team tickets (from 20)", "€38.00", "€760.00", "VAT 20 % on €760.00", "€152.00", "€912.00"):
        assert expected in text, expected


def test_the_credit_note_pdf_adds_up_unit_price_net_vat_and_total(client, people, app):
    """A whole 510.00 taken back of a pack priced 425.00 net: every column of
    the credit note's PDF says what its invoice said, nothing reads 510 as net."""
    from billing.accounts.models import User

    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        order, payment = place(db.session, owner)
        confirm(db.session, payment)
        note = invoices.issue_credit_note(db.session, order, 51000, "Ordered twice", seller=SELLER, key="re_pdf",
                                          now=NOW)
        note_id = note.id
    login(client, people["owner"])

    text = pdf_text(client.get(f"/portal/invoices/{note_id}.pdf").data)

    assert "Credit note CN-2026-0001" in text and "Corrects invoice" in text and "2026-0001" in text
    [row] = [line for line in text.splitlines() if "2026-0001: Ordered twice" in line]
    assert re.findall(r"€[\d,.]+", row) == ["€425.00", "€425.00"]  # unit price excl. VAT, net
    assert "Unit price excl. VAT" in text and "VAT 20 % on €425.00" in text
    [credited] = [line for line in text.splitlines() if "Total credited" in line]
    assert credited.split()[-1] == "€510.00"
    assert text.count("€510.00") == 1  # the total credited, and nowhere else


def test_the_client_space_lists_orders_and_invoices(client, people, paid_invoice):
    invoice_id, order_id = paid_invoice
    login(client, people["owner"])

    page = client.get("/portal/orders").get_data(as_text=True)

    assert f"/portal/orders/{order_id}" in page and f"/portal/invoices/{invoice_id}.pdf" in page
    assert "2026-0001" in page


def test_the_client_space_lists_credit_notes_next_to_the_invoices(app, client, people, paid_invoice):
    invoice_id, order_id = paid_invoice
    with app.app_context():
        order = db.session.get(orders.Order, order_id)
        note = invoices.issue_credit_note(db.session, order, 10000, "Goodwill", seller=SELLER, key="re_list", now=NOW)
        note_id = note.id
    login(client, people["member"])  # any user of the account

    page = client.get("/portal/orders").get_data(as_text=True)

    invoices_part, credit_notes_part = page.split('id="invoices"')[1].split('id="credit-notes"')
    assert f"/portal/invoices/{invoice_id}.pdf" in invoices_part and "CN-2026-0001" not in invoices_part
    assert "CN-2026-0001" in credit_notes_part and f"/portal/invoices/{note_id}.pdf" in credit_notes_part
    assert "€100.00" in credit_notes_part and f"/portal/orders/{order_id}" in credit_notes_part
    assert "Credit notes" in credit_notes_part.split("</h2>")[0]


def test_another_account_sees_no_invoice_and_no_order(app, client, people, paid_invoice):
    from common.identity import accounts
    from tests.conftest import PASSWORD

    invoice_id, order_id = paid_invoice
    with app.app_context():
        accounts.register(db.session, "Rival", "Rita", "rita@example.com", PASSWORD, "en", "FR")
    login(client, "rita@example.com")

    for path in (f"/portal/invoices/{invoice_id}.pdf", f"/portal/orders/{order_id}",
                 f"/portal/orders/{order_id}/instructions.pdf", "/portal/invoices/999.pdf"):
        assert client.get(path).status_code == 404, path
    assert "2026-0001" not in client.get("/portal/orders").get_data(as_text=True)


def test_staff_see_any_invoice_and_anonymous_visitors_log_in(app, people, paid_invoice):
    invoice_id, _order_id = paid_invoice
    assert app.test_client().get(f"/portal/invoices/{invoice_id}.pdf").status_code == 302
    staff_client = app.test_client()
    login(staff_client, people["staff"])
    assert staff_client.get(f"/portal/invoices/{invoice_id}.pdf").status_code == 200
