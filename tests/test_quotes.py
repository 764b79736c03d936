"""billing.quotes and the staff orders of billing.orders on both engines: a
quote becomes exactly the lot DESIGN.md asks (units, validity, pooled or
single-user, VAT, invoice); accepting twice, at once or late places one
order or a clear refusal; phone orders and complimentary lots reach the
client's balance and statement."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from checkout_support import NOW, both, client, confirm, pack, person, session, staff  # noqa: F401
from sqlalchemy import func, select

from billing import audit
from billing.accounts.models import User
from billing.catalogue.models import Catalogue, Pack
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from billing.ledger import statement
from billing.ledger.models import Lot
from billing.notifications.outbox import OutboxMessage
from billing.orders import services as orders
from billing.orders.models import Invoice, Order
from billing.quotes import services as quotes
from billing.quotes.models import Quote
from billing.subscriptions import services as subscriptions
from common.extensions import db

METHODS = ("transfer", "cheque", "card")
IBAN = "FR7630006000011234567890189"


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def ask(session, slug: str, requester: User | None = None, quantity: int = 1, email: str = "it@example.com") -> Quote:
    return quotes.request_quote(session, pack(session, slug), requester=requester, name="Ines IT", email=email,
                                company="Helpdesk SARL", country="FR", language="fr", message="20 users",
                                quantity=quantity, now=NOW)


def send(session, quote: Quote, unit_price: int, quantity: int = 1, **terms) -> str:
    terms.setdefault("validity_months", None)
    terms.setdefault("valid_until", NOW.date() + timedelta(days=30))
    return quotes.send_quote(session, quote, by=staff(session), unit_price=unit_price, quantity=quantity,
                             note="", now=NOW, **terms)


def accept(session, quote: Quote, by: User, method: str = "transfer", now=NOW):
    return quotes.accept_quote(session, quote, by=by, method=method, methods=METHODS, now=now, iban=IBAN)


@both
def test_the_pooled_bundle_quoted_at_38_a_ticket_grants_20_pooled_tickets_for_a_year(session):
    """The issue's journey in services: 20 tickets at €38 VAT included (20 %)."""
    account, owner = client(session)
    member = person(session, account)
    member.role = "member"
    quote = ask(session, "itsupport-team-tickets", owner, quantity=20)
    assert (quote.status, quote.account_id, quote.requested_quantity) == ("requested", account.id, 20)
    send(session, quote, 3800, quantity=20)
    [sent] = session.scalars(select(audit.AuditEntry)).all()
    assert (sent.action, sent.before["status"], sent.after["status"], sent.after["unit_price"]) == (
        "quote.send", "requested", "sent", 3800)
    order, payment = accept(session, quote, owner)
    orders.await_payment(session, payment, now=NOW)

    assert (order.quantity, order.unit_price, order.total, order.net, order.vat) == (20, 3800, 76000, 63333, 12667)
    assert order.price_includes_vat and order.vat_rate_bp == 2000 and order.method == "transfer"
    assert session.get(Quote, quote.id).order_id == order.id
    confirm(session, payment, by=staff(session))

    lot = session.scalar(select(Lot).where(Lot.order_id == order.id))
    assert (lot.unit, lot.granted, lot.owner_id, lot.source) == ("ticket", 20, None, "purchase")
    assert lot.expires_at.date() == date(2027, 1, 5)  # the pack's 12 months
    for who in (owner, member):
        held = ledger.balances(session, account.id, now=NOW, user_id=who.id)
        assert [(b.unit, b.net) for b in held] == [("ticket", 20)]
    invoice = session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert (invoice.gross, invoice.net, invoice.vat, invoice.lines[0].quantity, invoice.lines[0].unit_price) == (
        76000, 63333, 12667, 20, 3800)


@both
def test_a_single_user_bundle_goes_to_whoever_accepts_and_a_quoted_validity_is_kept(session):
    account, owner = client(session)
    quote = ask(session, "itsupport-tickets-20", owner)
    send(session, quote, 70000, validity_months=18)
    order, payment = accept(session, quote, owner)
    confirm(session, payment, by=staff(session))
    lot = session.scalar(select(Lot).where(Lot.order_id == order.id))
    assert (lot.granted, lot.owner_id, order.validity_months) == (20, owner.id, 18)
    assert lot.expires_at.date() == date(2027, 7, 5)


@both
def test_a_web_service_plan_is_720_minutes_a_year_net_of_martinique_vat(session):
    account, owner = client(session)
    quote = ask(session, "webservice-12h", owner)
    send(session, quote, 60000)
    order, payment = accept(session, quote, owner, method="cheque")
    assert (order.net, order.vat, order.total, order.price_includes_vat) == (60000, 5100, 65100, False)
    confirm(session, payment, by=staff(session))
    lot = session.scalar(select(Lot).where(Lot.order_id == order.id))
    assert (lot.unit, lot.granted, lot.expires_at.date()) == ("minute", 720, date(2027, 1, 5))


@both
def test_accepting_twice_gives_one_order_and_after_expiry_a_clear_refusal(session):
    account, owner = client(session)
    quote = ask(session, "webservice-24h", owner)
    send(session, quote, 100000, valid_until=NOW.date() + timedelta(days=2))
    first = accept(session, quote, owner)
    again = accept(session, quote, owner, method="cheque")
    assert first[0].id == again[0].id and count(session, Order) == 1

    late = ask(session, "webservice-36h", owner)
    send(session, late, 150000, valid_until=NOW.date() + timedelta(days=2))
    with pytest.raises(quotes.QuoteError, match="expired"):
        accept(session, late, owner, now=NOW + timedelta(days=3))
    assert session.get(Quote, late.id).status == "sent" and count(session, Order) == 1
    # The last day itself still accepts.
    assert accept(session, late, owner, now=NOW + timedelta(days=2, hours=5))[0].total == 162750


@both
def test_another_account_cannot_accept_and_a_visitor_quote_goes_to_whoever_opens_its_link(session):
    account, owner = client(session)
    _other, stranger = client(session)
    mine = ask(session, "itsupport-ticket-1", owner)
    send(session, mine, 4000)
    with pytest.raises(quotes.QuoteError):
        accept(session, mine, stranger)
    assert session.get(Quote, mine.id).status == "sent"

    visitor = ask(session, "itsupport-ticket-1", None, email="New@Example.com")
    assert (visitor.account_id, visitor.email, visitor.company) == (None, "new@example.com", "Helpdesk SARL")
    token = send(session, visitor, 4000)
    assert quotes.by_token(session, token).id == visitor.id
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "quote_sent",
                                                         OutboxMessage.email == "new@example.com"))
    assert message.payload["token"] == token and message.user_id is None
    order, _payment = accept(session, visitor, stranger)
    assert session.get(Quote, visitor.id).account_id == stranger.account_id
    with pytest.raises(quotes.QuoteError, match="another account"):
        accept(session, visitor, owner)


@both
def test_bad_terms_and_requests_write_nothing(session):
    account, owner = client(session)
    with pytest.raises(orders.OrderError):
        ask(session, "itsupport-team-tickets", owner, quantity=19)  # pooled: from 20
    with pytest.raises(quotes.QuoteError):
        ask(session, "toopixel-36", owner)  # it has a price
    quote = ask(session, "itsupport-team-tickets", owner, quantity=20)
    for unit_price, quantity, extra in [(-1, 20, {}), (3800, 5, {}), (3800, 20, {"validity_months": 0}),
                                        (3800, 20, {"valid_until": NOW.date() - timedelta(days=1)})]:
        with pytest.raises(quotes.QuoteError):
            send(session, quote, unit_price, quantity, **extra)
    assert session.get(Quote, quote.id).status == "requested"
    with pytest.raises(quotes.QuoteError):
        quotes.send_quote(session, quote, by=owner, unit_price=1, quantity=20, validity_months=None,
                          valid_until=NOW.date(), note="", now=NOW)
    assert count(session, OutboxMessage, OutboxMessage.kind == "quote_sent") == 0


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_tabs_accepting_at_once_place_one_order(app):
    with app.app_context():
        account, owner = client(db.session)
        quote = ask(db.session, "itsupport-team-tickets", owner, quantity=20)
        send(db.session, quote, 3800, quantity=20)
        quote_id, owner_id = quote.id, owner.id
    barrier = threading.Barrier(3)
    placed: list[int] = []

    def tab() -> None:
        with app.app_context():
            barrier.wait()
            order, _payment = accept(db.session, db.session.get(Quote, quote_id), db.session.get(User, owner_id))
            placed.append(order.id)
            db.session.remove()

    threads = [threading.Thread(target=tab) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(placed) == 3 and len(set(placed)) == 1
    with app.app_context():
        assert count(db.session, Order) == 1


# --- Staff orders -------------------------------------------------------------

@both
def test_a_phone_order_is_placed_for_the_person_chosen_and_logged_as_staffs(session):
    account, owner = client(session)
    member = person(session, account)
    clerk = staff(session)
    priced = pack(session, "demo-team-tickets")
    order, payment = orders.place_on_terms(session, account, priced, buyer=member, quantity=25,
                                           terms=orders.catalogue_terms(priced), method="transfer",
                                           methods=("transfer", "cheque"), now=NOW, iban=IBAN, by=clerk)
    assert (order.placed_by_id, order.total, order.method) == (member.id, 114000, "transfer")
    assert [(e.kind, e.by_id) for e in orders.events(session, order)] == [("placed", clerk.id)]
    [entry] = session.scalars(select(audit.AuditEntry)).all()
    assert (entry.actor_id, entry.action, entry.after["total"], entry.after["buyer"]) == (
        clerk.id, "order.phone", 114000, member.id)
    with pytest.raises(orders.OrderError):
        orders.place_on_terms(session, account, priced, buyer=member, quantity=25,
                              terms=orders.catalogue_terms(priced), method="transfer", methods=("transfer",),
                              now=NOW, iban=IBAN, by=owner)  # a client for another user
    _other, stranger = client(session)
    with pytest.raises(orders.OrderError):
        orders.place_on_terms(session, account, priced, buyer=stranger, quantity=25,
                              terms=orders.catalogue_terms(priced), method="transfer", methods=("transfer",),
                              now=NOW, iban=IBAN, by=clerk)
    assert count(session, Order) == 1


@both
def test_a_complimentary_lot_is_free_needs_a_reason_and_shows_on_the_statement(session):
    account, owner = client(session)
    clerk = staff(session)
    clerk.role = "admin"
    agent = staff(session)
    agent.role = "agent"
    bundle = pack(session, "itsupport-ticket-1")
    with pytest.raises(orders.OrderError):
        orders.grant_complimentary(session, account, bundle, quantity=1, reason="  ", by=clerk, now=NOW, owner=owner)
    with pytest.raises(orders.OrderError):
        orders.grant_complimentary(session, account, bundle, quantity=1, reason="x", by=owner, now=NOW, owner=owner)
    with pytest.raises(orders.OrderError, match="administrator"):
        orders.grant_complimentary(session, account, bundle, quantity=1, reason="x", by=agent, now=NOW, owner=owner)
    assert count(session, Order) == count(session, audit.AuditEntry) == 0
    order = orders.grant_complimentary(session, account, bundle, quantity=1, reason="Sorry for the outage",
                                       by=clerk, now=NOW, owner=owner, key="form-1")
    again = orders.grant_complimentary(session, account, bundle, quantity=1, reason="Sorry for the outage",
                                       by=clerk, now=NOW, owner=owner, key="form-1")
    assert again.id == order.id and count(session, Lot) == 1
    assert (order.status, order.total, order.method, order.note) == ("paid", 0, "free", "Sorry for the outage")
    lot = session.scalar(select(Lot).where(Lot.order_id == order.id))
    assert (lot.source, lot.granted, lot.owner_id) == ("complimentary", 1, owner.id)
    assert count(session, Invoice) == 0
    day = NOW.date()
    read = statement.statement(session, account, day - timedelta(days=1), day + timedelta(days=1), now=NOW)
    grants = [g for part in read.sections for g in part.grants]
    assert [(g.source, g.units) for g in grants] == [("complimentary", 1)]
    assert "Sorry for the outage" in grants[0].detail
    [entry] = session.scalars(select(audit.AuditEntry)).all()
    assert (entry.actor_id, entry.action, entry.subject_id) == (clerk.id, "lot.complimentary", account.id)
    assert (entry.after["units"], entry.after["reason"]) == (1, "Sorry for the outage")


# --- Every offer of the five seeds ---------------------------------------------

SEEDS = ("toopixel", "webservice", "digitale", "innova", "itsupport")


def buy(session, pack_, owner: User) -> Order:
    """Buy ``pack_`` as a client can: the trial started, a priced pack ordered
    online, a pack priced on request through a quote (at 1,000.00 an item)."""
    items = pack_.min_quantity
    if pack_.kind == "trial":
        return orders.start_trial(session, owner.client_account, pack_, by=owner, now=NOW)
    if pack_.price is not None:
        order, payment = orders.place_order(session, owner.client_account, pack_, quantity=items, method="transfer",
                                            methods=METHODS, by=owner, now=NOW, iban=IBAN)
    else:
        asked = quotes.request_quote(session, pack_, requester=owner, name="", email="", company="", country="",
                                     language="en", message="", quantity=items, now=NOW)
        send(session, asked, 100000, quantity=items)
        order, payment = accept(session, asked, owner)
    orders.await_payment(session, payment, now=NOW)
    assert confirm(session, payment, by=staff(session)).status == "paid"
    return order


@both
def test_every_offer_of_the_five_seeds_can_be_bought_online_or_through_a_quote(session):
    for seed in SEEDS:
        load_preset(session, seed)
    packs = session.scalars(select(Pack).join(Catalogue).where(Catalogue.slug.in_(SEEDS)).order_by(Pack.id)).all()
    assert len(packs) >= 20
    quoted = 0
    for pack_ in packs:
        account, owner = client(session)
        order = buy(session, pack_, owner)
        assert order.status == "paid", pack_.slug
        if pack_.unlimited:
            assert subscriptions.current(session, account.id, now=NOW) is not None, pack_.slug
        else:
            lot = session.scalar(select(Lot).where(Lot.order_id == order.id))
            assert lot.granted == pack_.quantity * pack_.min_quantity, pack_.slug
            assert (lot.owner_id is None) == (not orders.sold_per_user(pack_)), pack_.slug
        if pack_.price is None and pack_.kind != "trial":
            quoted += 1
            assert order.unit_price == 100000 and order.vat_rate_bp == pack_.vat_rate_bp, pack_.slug
    assert quoted == 3 + 5  # Web Service's three plans; IT support's bundles, hourly pack and subscription
