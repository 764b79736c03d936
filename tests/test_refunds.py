"""Refunds of paid orders: the rule that says how many units a refund takes
back, and staff refunding a transfer's order from its page (partly, then
the rest; bad inputs; twice; who may). Card refunds through Stripe are in
tests/test_stripe.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from checkout_support import EUR_IBAN, NOW, SELLER, both, confirm, place
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot
from billing.orders import refunds
from billing.orders.models import Invoice, Order, OrderEvent
from billing.orders.services import OrderError
from common.extensions import db
from tests.conftest import login, post_form
from tests.test_security import snapshot
from tests.test_staff_orders import staff_client, text  # noqa: F401 (a fixture)

YEAR = datetime.now(UTC).year
TOKEN = re.compile(r'name="token" type="hidden" value="([0-9a-f]{32})"')


# --- The rule -------------------------------------------------------------------

# A lot of 10 units bought for €100.00:
# (refunds in turn, units unused before the first, expired) → units each takes back.
@pytest.mark.parametrize("amounts, unused, usable, taken", [
    ([3000], 10, True, [3]),
    ([2500], 10, True, [3]),  # 2.5 units of money back: the third unit goes too
    ([5000, 5000], 10, True, [5, 5]),
    ([10000], 10, True, [10]),
    ([10000], 6, True, [6]),  # 4 consumed: they stay consumed
    ([5000, 5000], 6, True, [5, 1]),  # two halves take back what one whole does
    ([5000, 5000], 2, True, [2, 0]),
    ([2500, 2500, 2500, 2500], 10, True, [3, 2, 3, 2]),
    ([1, 9999], 10, True, [1, 9]),
    ([3000], 10, False, [0]),  # expired: a credit note only
])
def test_a_refund_takes_back_its_share_of_the_units_rounded_up_from_what_is_unused(amounts, unused, usable, taken):
    credited = revoked = 0
    found = []
    for amount in amounts:
        units = refunds.units_to_revoke(granted=10, unused=unused, revoked=revoked, total=10000, credited=credited,
                                        amount=amount, usable=usable)
        found.append(units)
        credited, revoked, unused = credited + amount, revoked + units, unused - units
    assert found == taken


@pytest.mark.parametrize("credited, amount", [(0, 0), (0, -1), (0, 10001), (6000, 5000), (-1, 10)])
def test_the_rule_refuses_amounts_that_do_not_fit_the_order(credited, amount):
    with pytest.raises(ValueError):
        refunds.units_to_revoke(granted=10, unused=10, revoked=0, total=10000, credited=credited, amount=amount)


# --- Staff refund a transfer's order ------------------------------------------------

@pytest.fixture
def app_config():
    return {"PROVIDER_IBAN": EUR_IBAN}


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def paid(app, people) -> dict:
    """The owner's order of 5 hours (300 minutes) for €510.00, paid by transfer today."""
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        order, payment = place(db.session, owner)
        confirm(db.session, payment, now=now())
        return {"id": order.id, "account": owner.account_id}


def form_token(client, order: dict) -> str:
    found = TOKEN.search(text(client.get(f"/portal/orders/{order['id']}")))
    assert found, "no refund form on the order's page"
    return found.group(1)


def refund(client, order: dict, amount: str, reason: str = "Client left", token: str | None = None):
    token = token if token is not None else form_token(client, order)
    return post_form(client, f"/portal/staff/orders/{order['id']}/refund",
                     {"amount": amount, "reason": reason, "token": token})


def lot(app, order: dict) -> tuple[int, list[tuple[str, int]]]:
    with app.app_context():
        found = db.session.scalar(select(Lot).where(Lot.order_id == order["id"]))
        entries = db.session.execute(select(Entry.kind, Entry.quantity).where(Entry.lot_id == found.id)
                                     .order_by(Entry.id)).all()
        return found.remaining, [tuple(entry) for entry in entries]


def notes(app) -> list[tuple[str, int, str]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(Invoice.number, Invoice.gross, Invoice.note).where(Invoice.kind == "credit_note")
            .order_by(Invoice.id)).all()]


def balance(app, order: dict) -> int:
    with app.app_context():
        return sum(b.net for b in ledger.balances(db.session, order["account"], now=now()))


def consume(app, order: dict, minutes: int) -> None:
    with app.app_context():
        staff = db.session.scalar(select(User).where(User.is_staff.is_(True)))
        found = db.session.scalar(select(Lot).where(Lot.order_id == order["id"]))
        ledger.adjust(db.session, found.account, found.policy, -minutes, reason="work done", by=staff,
                      key=f"used-{minutes}", now=now())


@both
def test_staff_refund_part_then_the_rest_and_each_takes_its_share_of_the_units(app, staff_client, people, paid):
    consume(app, paid, 80)
    page = text(staff_client.get(f"/portal/orders/{paid['id']}"))
    assert 'value="510.00"' in page and "Left to credit: €510.00" in page
    assert "This refund takes back 3 h 40 min still unused" in page  # all of it: what is left of 300 min
    assert "Units already consumed stay consumed" in page and "Send the money back by hand, from the bank" in page

    first = refund(staff_client, paid, "100.00", "Slow answer")

    # €100.00 of €510.00: 58.8 of the 300 minutes, rounded up to 59.
    assert first.status_code == 302 and first.headers["Location"] == f"/portal/orders/{paid['id']}"
    page = text(staff_client.get(first.headers["Location"]))
    assert f"Order {paid['id']}: €100.00 refunded, credit note CN-{YEAR}-0001 issued; 59 min taken back." in page
    assert lot(app, paid) == (161, [("grant", 300), ("adjust", -80), ("refund", -59)])
    assert balance(app, paid) == 161
    assert "Left to credit: €410.00" in page and 'value="410.00"' in page
    assert f"Credit note CN-{YEAR}-0001: Slow answer (−€100.00) <small>(Sam Staff)</small>" in page

    rest = refund(staff_client, paid, "410.00", "Client left")

    assert rest.status_code == 302
    assert lot(app, paid) == (0, [("grant", 300), ("adjust", -80), ("refund", -59), ("refund", -161)])
    assert balance(app, paid) == 0
    assert notes(app) == [(f"CN-{YEAR}-0001", 10000, "Slow answer"), (f"CN-{YEAR}-0002", 41000, "Client left")]
    with app.app_context():
        assert db.session.get(Order, paid["id"]).status == "refunded"
        events = db.session.execute(select(OrderEvent.kind, OrderEvent.amount, User.email)
                                    .join(User, User.id == OrderEvent.by_id)
                                    .where(OrderEvent.order_id == paid["id"], OrderEvent.kind == "credit_note")
                                    .order_by(OrderEvent.id)).all()
        assert [tuple(e) for e in events] == [("credit_note", 10000, people["staff"]),
                                              ("credit_note", 41000, people["staff"])]
    page = text(staff_client.get(f"/portal/orders/{paid['id']}"))
    assert 'id="refund"' not in page  # nothing left to refund
    verified = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0 and verified.output.startswith("ok\t"), verified.output

    client = app.test_client()
    login(client, people["owner"])
    listed = text(client.get("/portal/orders"))
    assert f"CN-{YEAR}-0001" in listed and f"CN-{YEAR}-0002" in listed
    own_page = text(client.get(f"/portal/orders/{paid['id']}"))
    assert f"Credit note CN-{YEAR}-0002 (PDF)" in own_page and 'id="refund"' not in own_page


def test_the_units_line_follows_the_amount_typed(staff_client, paid):
    path = f"/portal/staff/orders/{paid['id']}/refund/units"
    assert "takes back 1 h still unused" in text(staff_client.get(path, query_string={"amount": "102"}))
    assert "takes back 1 min still unused" in text(staff_client.get(path, query_string={"amount": "0.01"}))
    assert "more than is left to credit" in text(staff_client.get(path, query_string={"amount": "510.01"}))
    assert "Enter an amount such as 425.00." in text(staff_client.get(path, query_string={"amount": "abc"}))


def test_a_refund_of_an_expired_pack_is_a_credit_note_only(app, staff_client, people):
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        order, payment = place(db.session, owner)
        confirm(db.session, payment, now=NOW)  # six months of validity: over by today
        expired = {"id": order.id, "account": owner.account_id}
    assert "takes back no units" in text(staff_client.get(f"/portal/orders/{expired['id']}"))

    response = refund(staff_client, expired, "510.00")

    assert response.status_code == 302
    assert "no units taken back" in text(staff_client.get(response.headers["Location"]))
    assert lot(app, expired) == (300, [("grant", 300)])
    assert notes(app) == [(f"CN-{YEAR}-0001", 51000, "Client left")]


def test_the_same_form_sent_twice_is_one_refund(app, staff_client, paid):
    token = form_token(staff_client, paid)

    first = refund(staff_client, paid, "100.00", token=token)
    again = refund(staff_client, paid, "100.00", token=token)

    assert (first.status_code, again.status_code) == (302, 302)
    assert f"This refund was already recorded (credit note CN-{YEAR}-0001): nothing changed." in text(
        staff_client.get(again.headers["Location"]))
    assert len(notes(app)) == 1 and lot(app, paid)[1] == [("grant", 300), ("refund", -59)]
    # A new form is a new refund.
    assert refund(staff_client, paid, "100.00").status_code == 302 and len(notes(app)) == 2


@pytest.mark.parametrize("amount, reason, token, message", [
    ("abc", "x", None, "Enter an amount such as 425.00."),
    ("-5", "x", None, "Enter a positive amount, with no more decimals than the currency has."),
    ("0", "x", None, "The amount to refund must be more than zero."),
    ("510.01", "x", None, "That is more than is left to credit on this order."),
    ("10.001", "x", None, "Enter a positive amount, with no more decimals than the currency has."),
    ("10", "   ", None, "This field is required."),
    ("10", "x", "forged", "This form has expired: check it and send it again."),
])
def test_bad_refunds_get_a_message_a_422_and_write_nothing(app, staff_client, paid, amount, reason, token, message):
    token = form_token(staff_client, paid) if token is None else token
    before = snapshot(app)

    response = refund(staff_client, paid, amount, reason, token=token)

    assert response.status_code == 422 and message in text(response)
    assert snapshot(app) == before
    assert TOKEN.search(text(response))  # the form again, ready to send


def test_an_unpaid_order_is_not_refunded(app, staff_client, people):
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        order, _payment = place(db.session, owner)
        pending = {"id": order.id}
    assert 'id="refund"' not in text(staff_client.get(f"/portal/orders/{pending['id']}"))
    before = snapshot(app)

    response = refund(staff_client, pending, "10.00", token="0" * 32)

    assert response.status_code == 422
    assert f"Order {pending['id']} is pending: only a paid order can be refunded." in text(response)
    assert snapshot(app) == before


@pytest.mark.parametrize("role, wanted", [("anon", "login"), ("member", 403), ("owner", 403), ("other", 403),
                                         ("agent", 403)])
def test_only_admins_refund(app, people, paid, role, wanted):
    """Agents work the desk and confirm payments; refunds are an admin's."""
    from common.identity import accounts

    client = app.test_client()
    if role == "other":
        with app.app_context():
            accounts.register(db.session, "Other Co", "Oscar Other", "other@example.com",
                              "correct horse battery staple", "en", "FR")
        login(client, "other@example.com")
    elif role == "agent":
        with app.app_context():
            accounts.create_staff(db.session, "Abe Agent", "agent@example.com", "correct horse battery staple",
                                  role="agent")
        login(client, "agent@example.com")
    elif role != "anon":
        login(client, people[role])
    before = snapshot(app)

    response = refund(client, paid, "10.00", token="0" * 32)
    units = client.get(f"/portal/staff/orders/{paid['id']}/refund/units", query_string={"amount": "10"})

    if wanted == "login":
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
        assert units.status_code == 302
    else:
        assert (response.status_code, units.status_code) == (wanted, wanted)
        assert 'id="refund"' not in text(client.get(f"/portal/orders/{paid['id']}"))
    assert snapshot(app) == before


def test_unknown_orders_are_404(staff_client, paid):
    assert refund(staff_client, {"id": 999}, "1", token="0" * 32).status_code == 404
    assert staff_client.get("/portal/staff/orders/999/refund/units").status_code == 404


# --- The service ---------------------------------------------------------------------

def test_the_service_refuses_clients_agents_and_empty_reasons_and_writes_nothing(app, people, paid):
    from common.identity import accounts

    with app.app_context():
        order = db.session.get(Order, paid["id"])
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        staff = db.session.scalar(select(User).where(User.email == people["staff"]))
        agent = accounts.create_staff(db.session, "Abe Agent", "agent@example.com", "correct horse battery staple",
                                      role="agent")
        for by, reason, message in [(owner, "x", "Only an administrator refunds an order."),
                                    (agent, "x", "Only an administrator refunds an order."),
                                    (None, "x", "Only an administrator refunds an order."),
                                    (staff, "  ", "Say why the order is refunded.")]:
            with pytest.raises(OrderError) as refused:
                refunds.refund_order(db.session, order, 1000, reason, by=by, now=now(), key="k", seller=SELLER)
            assert refused.value.message == message
        assert db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.kind == "credit_note")) == 0


def test_a_refund_of_a_pack_with_units_moved_on_stays_within_what_is_unused(app, people, paid):
    """Half refunded after all but 10 minutes were used: those 10 go, and the rest later takes nothing."""
    consume(app, paid, 290)
    with app.app_context():
        order = db.session.get(Order, paid["id"])
        staff = db.session.scalar(select(User).where(User.email == people["staff"]))
        half = refunds.refund_order(db.session, order, 25500, "Half", by=staff, now=now(), key="half", seller=SELLER)
        rest = refunds.refund_order(db.session, order, 25500, "Rest", by=staff, now=now() + timedelta(seconds=1),
                                    key="rest", seller=SELLER)
        assert (half.units, rest.units, half.duplicate) == (10, 0, False)
        again = refunds.refund_order(db.session, order, 25500, "Half", by=staff, now=now(), key="half", seller=SELLER)
        assert (again.note.id, again.units, again.duplicate) == (half.note.id, 10, True)
    assert lot(app, paid)[0] == 0


def test_the_ledger_revokes_a_part_of_a_lot_and_never_more_than_is_unused(app, paid):
    consume(app, paid, 250)
    with app.app_context():
        found = db.session.scalar(select(Lot).where(Lot.order_id == paid["id"]))
        for quantity in (51, 0, -1):
            with pytest.raises(ledger.LedgerError):
                ledger.refund(db.session, found, by=None, key=f"part-{quantity}", now=now(), quantity=quantity)
        ledger.refund(db.session, found, by=None, key="part", now=now(), quantity=20)
        ledger.refund(db.session, found, by=None, key="part", now=now(), quantity=20)  # the same key: once
        ledger.refund(db.session, found, by=None, key="rest", now=now())
    assert lot(app, paid) == (0, [("grant", 300), ("adjust", -250), ("refund", -20), ("refund", -30)])
