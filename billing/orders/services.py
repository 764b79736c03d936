"""Orders and their payments: place, await, confirm, cancel, remind, and
the free trial.

An order and its payments are two state machines (pretix's shape). A
payment is one attempt to receive money by one provider (created → pending
→ confirmed | failed | cancelled); the order is paid when its confirmed
payments cover its total, and at that moment, in one transaction, it is
marked paid, its lot is granted through billing.ledger and its invoice is
issued. ``confirm_payment`` re-reads the payment under the account's lock
and returns early when it is already confirmed: a webhook and a return page
racing, a double click or two staff at once credit once.

Every service receives the session, takes ``now`` (aware) and runs as one
unit of work (billing.transaction.atomic): it commits once, or rolls back
and raises a BillingError (OrderError, or the ledger's LedgerError) with a
message meant for the user, so nothing is half-written. No Flask here:
the messages each step owes the client are queued in its transaction
(billing.notifications.outbox) and delivered by common.mail.delivery.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from babel.numbers import get_currency_precision
from sqlalchemy import ColumnElement, CursorResult, Select, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.pricing import Price, split_vat
from billing.clock import utc
from billing.errors import N_, BillingError
from billing.ledger import services as ledger
from billing.ledger.models import Lot
from billing.models import MAX_INTEGER
from billing.notifications import outbox
from billing.orders import references
from billing.orders.invoices import Seller, issue_invoice
from billing.orders.models import Order, OrderEvent, Payment, TrialClaim
from billing.subscriptions import services as subscriptions
from billing.subscriptions.models import Subscription
from billing.transaction import atomic, in_unit_of_work

# One order of a pooled bundle beyond this many items is a typo, not a purchase.
MAX_QUANTITY = 1000
# Providers whose payments wait for a person to see the money arrive.
MANUAL_METHODS = ("transfer", "cheque")



class OrderError(BillingError):
    """A request the order services refused. ``message`` is a gettext
    message id with ``params`` (a view shows ``_(message, **params)``);
    ``field`` names the form field to blame, if any."""



class TrialTaken(OrderError):
    """The account or the email address has had its free trial."""


class MoneyReceived(OrderError):
    """The order has received part of its money: it is not cancelled.
    ``params["received"]`` is what arrived, in minor units."""


# --- Rules (pure) -----------------------------------------------------------

def allows_quantity(pack: Pack) -> bool:
    """Whether the buyer chooses how many items: a pooled bundle sold by the
    item from its minimum. Every other pack is sold one at a time."""
    return pack.pooled or pack.min_quantity > 1


def sold_per_user(pack: Pack) -> bool:
    """Tickets not pooled serve the buyer alone (the shop says "Single user");
    time and credits serve the whole account."""
    return pack.unit == "ticket" and not pack.pooled and not pack.unlimited


def check_quantity(pack: Pack, quantity: object) -> int:
    if allows_quantity(pack):
        if (isinstance(quantity, bool) or not isinstance(quantity, int)
                or not pack.min_quantity <= quantity <= MAX_QUANTITY):
            raise OrderError(N_("Choose a quantity from %(min)d to %(max)d."), "quantity",
                             min=pack.min_quantity, max=MAX_QUANTITY)
        return quantity
    if quantity != 1:
        raise OrderError(N_("This pack is sold one at a time."), "quantity")
    return 1


def quote(pack: Pack, quantity: int) -> Price:
    """Net, VAT and gross of ``quantity`` items, VAT rounded once on the line."""
    if pack.price is None:
        raise OrderError(N_("This pack is priced on request: contact us for a quote."), "pack")
    return split_vat(pack.price * quantity, pack.currency, pack.vat_rate_bp, pack.price_includes_vat)


def parse_amount(text: str, currency: str) -> int:
    """``"1 234,50"`` or ``"1234.5"`` to minor units of ``currency``; no
    float on the way. Raises OrderError when it is not an amount."""
    cleaned = re.sub(r"[\s\u00a0\u202f']", "", text or "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    elif "," in cleaned:
        cleaned = cleaned.replace(",", "")  # thousands separators, as in 1,234.50
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise OrderError(N_("Enter an amount such as 425.00."), "amount") from None
    minor = value.scaleb(get_currency_precision(currency))
    if not value.is_finite() or minor != minor.to_integral_value() or value < 0:
        raise OrderError(N_("Enter a positive amount, with no more decimals than the currency has."), "amount")
    if minor > MAX_INTEGER:
        raise OrderError(N_("This amount is larger than any Forfait can record."), "amount")
    return int(minor)


# --- Reading ----------------------------------------------------------------

def received(session: Session, order_id: int) -> int:
    """What the order's confirmed payments add up to."""
    return session.execute(
        select(func.coalesce(func.sum(Payment.amount), 0))
        .where(Payment.order_id == order_id, Payment.status == "confirmed")
    ).scalar_one()


def awaited_payment(session: Session, order: Order) -> Payment | None:
    """The payment the order is waiting for, if any."""
    return session.scalar(select(Payment).where(Payment.order_id == order.id, Payment.status == "pending")
                          .order_by(Payment.id.desc()).limit(1))


def is_first_purchase(session: Session, account: Account | None, pack: Pack) -> bool:
    """Whether buying ``pack`` would be the account's first purchase on its
    balance: for a catalogue with ``registration_first``, the pack bought
    then is the registration pack (it expires; later top-ups do not)."""
    if account is None:
        return True
    return not session.scalar(select(exists().where(
        Lot.account_id == account.id, Lot.policy_id == pack.policy_id, Lot.source == "purchase")))


def awaited(session: Session, search: str = "") -> list[tuple[Order, Payment]]:
    """Orders waiting for a transfer or a cheque, with the payment awaited,
    oldest first; ``search`` matches a reference (any spacing), an amount
    (the total or what is still awaited) or the client's name or email."""
    query = (
        select(Order, Payment)
        .join(Payment, Payment.order_id == Order.id)
        .where(Order.status == "pending", Payment.status == "pending", Payment.provider.in_(MANUAL_METHODS))
        .order_by(Order.created_at, Order.id)
    )
    search = search.strip()
    if search:
        query = query.where(_matching(search))
    return [(order, payment) for order, payment in session.execute(query)]


def recently_confirmed(session: Session, search: str = "", limit: int = 20) -> list[tuple[Order, Payment]]:
    """Payments received, by any method, newest confirmation first, with
    their order: how much, when, and by whom (None: a provider's webhook).
    ``search`` matches as in ``awaited``."""
    query = (
        select(Order, Payment)
        .join(Payment, Payment.order_id == Order.id)
        .where(Payment.status == "confirmed", Payment.confirmed_at.is_not(None))
        .order_by(Payment.confirmed_at.desc(), Payment.id.desc())
        .limit(limit)
    )
    search = search.strip()
    if search:
        query = query.where(_matching(search))
    return [(order, payment) for order, payment in session.execute(query)]


def _matching(search: str) -> ColumnElement[bool]:
    normalised = references.normalise(search)
    pattern = f"%{search.lower()}%"
    clients = select(User.account_id).where(func.lower(User.email).like(pattern))
    conditions: list[ColumnElement[bool]] = [
        func.replace(Order.reference, " ", "").like(f"%{normalised}%"),
        func.lower(Account.name).like(pattern),
        Order.account_id.in_(clients),
    ]
    number = search.lstrip("#")
    if number.isascii() and number.isdigit() and int(number) <= MAX_INTEGER:
        conditions.append(Order.id == int(number))
    try:
        amounts = {parse_amount(search, currency) for currency in ("EUR", "JPY")}
    except OrderError:
        amounts = set()
    if amounts:
        conditions += [Order.total.in_(amounts), Payment.amount.in_(amounts)]
    return and_(Order.account_id == Account.id, or_(*conditions))


def flagged(session: Session) -> list[tuple[Order, Payment]]:
    """Payments a provider flagged for staff (``info["flag"]``, see
    ``note_payment``): money taken that was not credited, such as a card
    paid after its order was cancelled, or for another amount. Oldest first."""
    query = (
        select(Order, Payment)
        .join(Payment, Payment.order_id == Order.id)
        .where(Payment.info["flag"].as_string().is_not(None))
        .order_by(Payment.id)
    )
    return [(order, payment) for order, payment in session.execute(query)]


def overpaid(session: Session) -> list[tuple[Order, int]]:
    """Orders whose confirmed payments exceed the total, with the excess:
    flagged for staff to refund or credit the difference."""
    paid = (
        select(Payment.order_id, func.sum(Payment.amount).label("received"))
        .where(Payment.status == "confirmed")
        .group_by(Payment.order_id)
        .subquery()
    )
    rows = session.execute(
        select(Order, paid.c.received - Order.total)
        .join(paid, paid.c.order_id == Order.id)
        .where(paid.c.received > Order.total)
        .order_by(Order.id)
    )
    return [(order, excess) for order, excess in rows]


def events(session: Session, order: Order) -> list[OrderEvent]:
    return list(session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)))


# --- Placing ----------------------------------------------------------------

def log_event(session: Session, order: Order, kind: str, now: datetime, *, by: User | None = None,
         payment: Payment | None = None, amount: int | None = None, note: str = "") -> None:
    session.add(OrderEvent(order_id=order.id, payment_id=payment.id if payment else None, kind=kind, amount=amount,
                           by_id=by.id if by else None, note=note, created_at=now))


def tell_buyer(session: Session, kind: str, order: Order, now: datetime, **payload: object) -> None:
    """Queue ``kind`` for the buyer (whatever their preferences: it is their
    order) and the account's owners, in the caller's transaction."""
    buyer = [order.placed_by] if order.placed_by is not None else []
    outbox.enqueue(session, kind, f"order:{order.id}", [*buyer, *outbox.owners(session, order.account_id)],
                   now=now, payload={"order_id": order.id, **payload}, account_id=order.account_id,
                   always=[user.id for user in buyer])


def place_order(
    session: Session,
    account: Account,
    pack: Pack,
    *,
    quantity: int,
    method: str,
    methods: tuple[str, ...],
    by: User,
    now: datetime,
    iban: str = "",
    expected_total: int | None = None,
    key: str | None = None,
) -> tuple[Order, Payment]:
    """Place an order for ``quantity`` items of ``pack``, to be paid by
    ``method`` (one of ``methods``, those the shop offers for it).

    ``key`` (the checkout form's one-time token) makes placing idempotent:
    an order placed already under it, by this account, is returned with its
    first payment instead of a second order, even when both arrive at once.

    The price is computed here, never taken from the client: a form that
    shows a total sends it back as ``expected_total``, and a different one
    (the price changed meanwhile, or the form was tampered with) is refused.
    Returns the order and its first payment (``created``); the provider then
    executes it. ``iban`` is the provider's, for the reference's kind.
    """
    now = utc(now)
    if key is not None:
        placed = placed_under(session, account, key)
        if placed is not None:
            return placed
    try:
        return _place_order(session, account, pack, quantity=quantity, method=method, methods=methods, by=by,
                            now=now, iban=iban, expected_total=expected_total, key=key)
    except IntegrityError:
        # The same form sent at the same moment placed it first. A caller's
        # unit of work is lost with it: the caller looks (shop.ordering).
        if in_unit_of_work(session):
            raise
        placed = placed_under(session, account, key) if key is not None else None
        if placed is None:
            raise
        return placed


def placed_under(session: Session, account: Account, key: str) -> tuple[Order, Payment] | None:
    """The order a checkout form keyed ``key`` placed already, with its first payment."""
    order = session.scalar(select(Order).where(Order.checkout_key == key))
    if order is None:
        return None
    if order.account_id != account.id:
        raise OrderError(N_("This form has expired: check it and send it again."), "total")
    payment = session.scalars(select(Payment).where(Payment.order_id == order.id).order_by(Payment.id).limit(1)).one()
    return order, payment


def _place_order(session: Session, account: Account, pack: Pack, *, quantity: int, method: str,
                 methods: tuple[str, ...], by: User, now: datetime, iban: str, expected_total: int | None,
                 key: str | None) -> tuple[Order, Payment]:
    with atomic(session):
        if pack.retired_at is not None:
            raise OrderError(N_("This pack is no longer on sale."), "pack")
        if pack.kind == "trial":
            raise OrderError(N_("The free trial is started, not ordered."), "pack")
        if by.account_id != account.id:
            raise OrderError(N_("Only a user of the account can order for it."))
        if pack.unlimited:
            # Two orders at once would start two subscriptions.
            ledger.lock_accounts(session, [account.id])
            refused = subscriptions.refusal(session, account, pack, now=now)
            if refused is not None:
                raise OrderError(refused[0], "pack", **refused[1])
        quantity = check_quantity(pack, quantity)
        price = quote(pack, quantity)
        if method not in methods:
            raise OrderError(N_("Choose one of the payment methods offered."), "method")
        if expected_total is not None and expected_total != price.gross:
            raise OrderError(N_("The total has changed: please check the summary and order again."), "total")
        placed = _new_order(session, account, pack, quantity, price, method, by, now, iban)
        placed[0].checkout_key = key
        session.flush()
        return placed


@dataclass(frozen=True)
class Terms:
    """What one item of a pack is sold for when it is not the catalogue's
    price: a quote's (billing.quotes) or a price staff agreed on the phone.
    ``unit_price`` is in minor units of the pack's currency, stated net or
    VAT included as ``includes_vat`` says; ``validity_months`` None keeps
    the pack's validity."""

    unit_price: int
    vat_rate_bp: int
    includes_vat: bool
    validity_months: int | None = None

    def price(self, currency: str, quantity: int) -> Price:
        return split_vat(self.unit_price * quantity, currency, self.vat_rate_bp, self.includes_vat)


def catalogue_terms(pack: Pack) -> Terms:
    """The pack's own terms; OrderError when it is priced on request."""
    if pack.price is None:
        raise OrderError(N_("This pack is priced on request: contact us for a quote."), "pack")
    return Terms(pack.price, pack.vat_rate_bp, pack.price_includes_vat)


def _new_order(session: Session, account: Account, pack: Pack, quantity: int, price: Price, method: str, by: User,
               now: datetime, iban: str, *, by_job: bool = False, terms: Terms | None = None,
               logged_by: User | None = None) -> tuple[Order, Payment]:
    """The order and its first payment (``created``): in the caller's
    transaction. ``by_job``: a renewal placed for ``by``, logged as the
    system's; ``logged_by``: staff who placed it for ``by`` (a phone order).
    ``terms``: a price other than the catalogue's (a quote's)."""
    terms = terms or catalogue_terms(pack)
    order = Order(account=account, pack=pack, placed_by=by, quantity=quantity, method=method,
                  unit_price=terms.unit_price, price_includes_vat=terms.includes_vat,
                  vat_rate_bp=terms.vat_rate_bp, validity_months=terms.validity_months,
                  net=price.net, vat=price.vat, total=price.gross,
                  currency=pack.currency, language=by.language, created_at=now)
    session.add(order)
    session.flush()
    order.reference = references.order_reference(order.id, order.currency, iban)
    payment = Payment(order=order, provider=method, amount=order.total, currency=order.currency, created_at=now)
    session.add(payment)
    session.flush()
    log_event(session, order, "placed", now, by=None if by_job else (logged_by or by), payment=payment,
              amount=order.total)
    return order, payment


def place_on_terms(session: Session, account: Account, pack: Pack, *, buyer: User, quantity: int, terms: Terms,
                   method: str, methods: tuple[str, ...], now: datetime, iban: str, by: User,
                   key: str | None = None) -> tuple[Order, Payment]:
    """Place an order of ``pack`` for ``buyer`` (a user of ``account``) at
    ``terms``: a quote accepted by ``buyer`` (``by`` is the buyer), or an
    order staff take by phone (``by`` is staff, logged as who placed it;
    ``terms`` the catalogue's or a price agreed). Paid like any other order:
    the caller asks ``method``'s provider for the money. ``key`` makes it
    idempotent as in ``place_order``. One unit of work."""
    now = utc(now)
    if key is not None:
        placed = placed_under(session, account, key)
        if placed is not None:
            return placed
    with atomic(session):
        if by.id != buyer.id and not (by.is_staff and by.is_active):
            raise OrderError(N_("Only staff place an order for a client."))
        if buyer.account_id != account.id or buyer.removed_at is not None:
            raise OrderError(N_("Choose a person of the account."), "buyer")
        if pack.retired_at is not None:
            raise OrderError(N_("This pack is no longer on sale."), "pack")
        if pack.kind == "trial":
            raise OrderError(N_("The free trial is started, not ordered."), "pack")
        if isinstance(terms.unit_price, bool) or not isinstance(terms.unit_price, int) or terms.unit_price < 0:
            raise OrderError(N_("Enter a positive amount, with no more decimals than the currency has."), "amount")
        if pack.unlimited:
            ledger.lock_accounts(session, [account.id])
            refused = subscriptions.refusal(session, account, pack, now=now)
            if refused is not None:
                raise OrderError(refused[0], "pack", **refused[1])
        quantity = check_quantity(pack, quantity)
        price = terms.price(pack.currency, quantity)
        if price.gross > MAX_INTEGER:
            raise OrderError(N_("This amount is larger than any Forfait can record."), "amount")
        if method not in methods:
            raise OrderError(N_("Choose one of the payment methods offered."), "method")
        placed = _new_order(session, account, pack, quantity, price, method, buyer, now, iban, terms=terms,
                            logged_by=by)
        placed[0].checkout_key = key
        session.flush()
        if by.id != buyer.id:
            audit.record(by, "order.phone", "order", placed[0].id, session=session, after={
                "account": account.id, "buyer": buyer.id, "pack": pack.slug, "quantity": quantity,
                "unit_price": terms.unit_price, "total": price.gross, "currency": pack.currency, "method": method})
        return placed


def grant_complimentary(session: Session, account: Account, pack: Pack, *, quantity: int, reason: str, by: User,
                        now: datetime, owner: User | None = None, key: str | None = None) -> Order:
    """A goodwill gesture: ``quantity`` items of ``pack`` granted free, with
    the reason the client reads. An order at zero, paid at once (method
    ``free``, no invoice), whose lot is ``complimentary``; a pack sold per
    user goes to ``owner`` (a person of the account). ``key`` (the form's
    one-time token) grants once however often the form is sent."""
    now = utc(now)
    reason = " ".join((reason or "").split())
    if key is not None:
        done = session.scalar(select(Order).where(Order.checkout_key == key))
        if done is not None:
            if done.account_id != account.id:
                raise OrderError(N_("This form has expired: check it and send it again."), "reason")
            return done
    with atomic(session):
        if not by.is_admin:
            raise OrderError(N_("Only an administrator grants a complimentary lot."))
        if not reason:
            raise OrderError(N_("Say why this lot is given: the client reads it."), "reason")
        if len(reason) > 500:
            raise OrderError(N_("Keep the reason under %(max)d characters."), "reason", max=500)
        if pack.retired_at is not None or pack.kind == "trial" or pack.unlimited or pack.quantity <= 0:
            raise OrderError(N_("Choose a pack that grants units."), "pack")
        quantity = check_quantity(pack, quantity)
        if owner is None or owner.account_id != account.id or owner.removed_at is not None:
            raise OrderError(N_("Choose a person of the account."), "buyer")
        ledger.lock_accounts(session, [account.id])
        order = Order(account=account, pack=pack, placed_by=owner, quantity=quantity, method="free", status="paid",
                      unit_price=0, price_includes_vat=pack.price_includes_vat, vat_rate_bp=pack.vat_rate_bp,
                      net=0, vat=0, total=0, currency=pack.currency, language=owner.language, note=reason,
                      checkout_key=key, created_at=now, paid_at=now)
        session.add(order)
        session.flush()
        log_event(session, order, "placed", now, by=by, amount=0, note=reason)
        log_event(session, order, "paid", now, by=by, amount=0)
        granted = ledger.grant(session, account, pack, key=f"order:{order.id}:grant", now=now, order=order, by=by,
                               owner=owner if sold_per_user(pack) else None, note=reason, complimentary=True)
        audit.record(by, "lot.complimentary", "account", account.id, session=session, after={
            "order": order.id, "pack": pack.slug, "quantity": quantity, "units": granted.lot.granted if granted.lot
            else None, "person": owner.id, "reason": reason})
        return order


def await_payment(session: Session, payment: Payment, *, now: datetime, external_id: str | None = None,
                  info: dict[str, Any] | None = None) -> Payment:
    """The provider has asked for the money (instructions shown, a Stripe
    session created): the payment is pending. Nothing else changes."""
    with atomic(session):
        current = session.get(Payment, payment.id, populate_existing=True)
        if current is None:
            raise OrderError(N_("There is no such payment."))
        if current.status == "created":
            current.status = "pending"
            current.external_id = external_id or current.external_id
            current.info = {**current.info, **(info or {})}
            if current.provider in MANUAL_METHODS:
                # How to pay, for whoever waits on a transfer or a cheque.
                tell_buyer(session, "order_received", current.order, utc(now), payment_id=current.id)
        return current


def trials_taken(session: Session, account_id: int | None, email: str | None) -> dict[int, TrialClaim]:
    """The free trials this account or this email address already took, by
    catalogue: each catalogue's trial is offered once (``start_trial``)."""
    if account_id is None and not email:
        return {}
    claims = session.scalars(select(TrialClaim).where(or_(TrialClaim.account_id == account_id,
                                                          TrialClaim.email == (email or "")))
                             .order_by(TrialClaim.created_at))
    return {claim.catalogue_id: claim for claim in claims}


def start_trial(session: Session, account: Account, pack: Pack, *, by: User, now: datetime) -> Order:
    """The free trial: no payment, credited at once. Once per account and
    once per verified email address in each catalogue."""
    now = utc(now)
    try:
        return _start_trial(session, account, pack, by, now)
    except IntegrityError:
        # A double click that raced past the check: the claim's unique keys stopped it.
        raise TrialTaken(N_("The free trial has already been taken by this account or this email address.")) from None


def _start_trial(session: Session, account: Account, pack: Pack, by: User, now: datetime) -> Order:
    with atomic(session):
        if pack.kind != "trial" or pack.retired_at is not None:
            raise OrderError(N_("This pack is not a free trial on offer."), "pack")
        if by.account_id != account.id:
            raise OrderError(N_("Only a user of the account can start its trial."))
        if by.email_verified_at is None:
            raise OrderError(N_("Please confirm your email address first: the trial is one per verified address."))
        ledger.lock_accounts(session, [account.id])
        taken = TrialClaim.catalogue_id == pack.catalogue_id
        if session.scalar(select(exists().where(taken, or_(TrialClaim.account_id == account.id,
                                                           TrialClaim.email == by.email)))):
            raise TrialTaken(N_("The free trial has already been taken by this account or this email address."))
        order = Order(account=account, pack=pack, placed_by=by, quantity=1, method="free", status="paid",
                      unit_price=0, vat_rate_bp=pack.vat_rate_bp, net=0, vat=0, total=0, currency=pack.currency,
                      language=by.language, created_at=now, paid_at=now)
        session.add(order)
        session.flush()
        session.add(TrialClaim(catalogue_id=pack.catalogue_id, account_id=account.id, email=by.email,
                               order_id=order.id, created_at=now))
        log_event(session, order, "placed", now, by=by, amount=0)
        log_event(session, order, "paid", now, by=by, amount=0)
        ledger.grant(session, account, pack, key=f"order:{order.id}:grant", now=now, order=order, by=by,
                     note="free trial")
        tell_buyer(session, "trial_started", order, now)
        return order


# --- Confirming -------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What confirming a payment did.

    ``status``: ``duplicate`` (already confirmed: nothing written),
    ``partial`` (recorded; ``missing`` still awaited by a new pending
    payment), ``paid`` (recorded, the order is paid, credited and invoiced
    by this call), ``overpaid`` (recorded; the order is or was paid and
    ``excess`` too much arrived: flagged for staff).
    """

    status: str
    order: Order
    payment: Payment
    missing: int = 0
    excess: int = 0
    # True for the one call that marked the order paid: its caller sends the mail.
    paid_now: bool = False


def confirm_payment(
    session: Session,
    payment: Payment,
    *,
    seller: Seller,
    now: datetime,
    amount: int | None = None,
    received_at: datetime | None = None,
    by: User | None = None,
    note: str = "",
) -> Outcome:
    """Record that ``payment`` arrived: ``amount`` (default: the amount
    expected) received at ``received_at`` (default: now).

    The payment is re-read under the account's lock; already confirmed, the
    call returns ``duplicate`` and writes nothing. Otherwise, in one
    transaction: the payment is confirmed; if confirmed payments now cover
    the total of a pending (or cancelled: the money came late) order, the
    order is marked paid, its lot granted (ledger key ``order:<id>:grant``)
    and its invoice issued; if they fall short, a pending payment for the
    rest is opened; too much is recorded and flagged. Every step is logged
    with ``by`` (None: a provider's webhook or return page) and the time.
    """
    now = utc(now)
    received_at = utc(received_at) if received_at is not None else now
    with atomic(session):
        if by is not None and not by.is_staff:
            raise OrderError(N_("Only staff confirm a payment by hand."))
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
            raise OrderError(N_("The amount received must be more than zero."), "amount")
        if received_at > now:
            raise OrderError(N_("The money cannot have arrived in the future."), "received_at")
        current = _locked_payment(session, payment)
        order = session.get_one(Order, current.order_id, populate_existing=True)
        if current.status == "confirmed":
            return Outcome("duplicate", order, current)
        current.status = "confirmed"
        current.amount = amount if amount is not None else current.amount
        current.received_at = received_at
        current.confirmed_at = now
        current.confirmed_by_id = by.id if by else None
        session.flush()
        log_event(session, order, "payment", now, by=by, payment=current, amount=current.amount, note=note)
        total_received = received(session, order.id)
        paid_here = False
        if order.status in ("pending", "cancelled") and total_received >= order.total:
            _mark_paid(session, order, seller=seller, now=now, by=by)
            paid_here = True
        missing = max(order.total - total_received, 0) if order.status == "pending" else 0
        excess = max(total_received - order.total, 0)
        if missing:
            if order.status == "cancelled":
                order.status, order.cancelled_at = "pending", None
            rest = Payment(order=order, provider=current.provider, status="pending", amount=missing,
                           currency=order.currency, created_at=now)
            session.add(rest)
            session.flush()
            # What arrived and what remains, with how to pay it.
            tell_buyer(session, "payment_partial", order, now, payment_id=rest.id, received=current.amount)
            status = "partial"
        elif excess:
            log_event(session, order, "overpaid", now, by=by, payment=current, amount=excess)
            status = "overpaid"
        else:
            status = "paid"
        return Outcome(status, order, current, missing=missing, excess=excess, paid_now=paid_here)


def _mark_paid(session: Session, order: Order, *, seller: Seller, now: datetime, by: User | None) -> None:
    """Paid, credited, invoiced: in the caller's transaction."""
    order.status = "paid"
    order.paid_at = now
    order.cancelled_at = None
    for waiting in session.scalars(select(Payment).where(Payment.order_id == order.id,
                                                         Payment.status.in_(("created", "pending")))):
        waiting.status = "cancelled"  # covered by what arrived: nothing more is awaited
    log_event(session, order, "paid", now, by=by, amount=order.total)
    if order.overage_id is not None:
        pass  # the bill of an overage grants nothing: its units were used already
    elif order.ordered_pack.unlimited:
        # A subscription grants no units: the paid order is its period.
        subscriptions.extend(session, order, now)
    else:
        ledger.grant(session, order.account, order.ordered_pack, key=f"order:{order.id}:grant", now=now, order=order,
                     owner=order.placed_by if sold_per_user(order.ordered_pack) else None, by=by,
                     note=f"order #{order.id}", validity_months=order.validity_months)
    if order.total > 0:
        issue_invoice(session, order, seller=seller, now=now, note=order.method)
    tell_buyer(session, "payment_confirmed", order, now)


# --- Cancelling and reminding -----------------------------------------------

def cancel_order(session: Session, order: Order, *, reason: str, now: datetime, by: User | None = None) -> Order:
    """Cancel an order still waiting for its money, with a reason the client
    reads. Its awaited payments are cancelled; cancelling twice is harmless.

    An order that has received part of its money is refused (MoneyReceived):
    that money is owed to the client, as the pack once the rest arrives or
    back, and a cancelled order would take it off every page staff read.
    A transfer or a cheque goes back by hand, from the bank: nothing here
    records that yet, so the order stays open, awaiting the rest."""
    now = utc(now)
    reason = (reason or "").strip()
    with atomic(session):
        if by is not None and not by.is_staff:
            raise OrderError(N_("Only staff cancel an order."))
        if not reason:
            raise OrderError(N_("Say why the order is cancelled."), "reason")
        ledger.lock_accounts(session, [order.account_id])
        current = session.get_one(Order, order.id, populate_existing=True)
        if current.status == "cancelled":
            return current
        if current.status != "pending":
            raise OrderError(N_("Order %(number)d is %(status)s: only an unpaid order can be cancelled."),
                             number=current.id, status=current.status)
        already = received(session, current.id)
        if already:
            raise MoneyReceived(N_("Order %(number)d cannot be cancelled: %(received)s has already been received "
                                   "for it. It stays open, awaiting the rest."), number=current.id, received=already)
        mark_cancelled(session, current, reason, now, by)
        return current


def mark_cancelled(session: Session, order: Order, reason: str, now: datetime, by: User | None) -> None:
    """Cancelled, with nothing awaited any more: in the caller's transaction."""
    order.status = "cancelled"
    order.cancelled_at = now
    order.cancel_reason = reason
    for waiting in session.scalars(select(Payment).where(Payment.order_id == order.id,
                                                         Payment.status.in_(("created", "pending")))):
        waiting.status = "cancelled"
    log_event(session, order, "cancelled", now, by=by, note=reason)
    tell_buyer(session, "order_cancelled", order, now)
    subscriptions.renewal_dropped(session, order)


def close_payment(session: Session, payment: Payment, *, status: str, reason: str, now: datetime) -> tuple[Order, bool]:
    """A payment that will not arrive: declined (``failed``), or given up
    (``cancelled``: a card checkout left to expire). Its order, if it is
    pending with nothing else awaited, is cancelled with ``reason``, which
    the client reads; the second value says whether this call cancelled it
    (its caller sends the mail). Only a created or pending payment closes:
    a confirmed one never does, and calling again changes nothing."""
    if status not in ("failed", "cancelled"):
        raise ValueError(f"a payment closes as failed or cancelled, not {status!r}")
    now = utc(now)
    with atomic(session):
        current = _locked_payment(session, payment)
        order = session.get_one(Order, current.order_id, populate_existing=True)
        if current.status not in ("created", "pending"):
            return order, False
        current.status = status
        session.flush()
        still_awaited = session.scalar(exists().where(
            Payment.order_id == order.id, Payment.status.in_(("created", "pending"))).select())
        if order.status != "pending" or still_awaited:
            return order, False
        mark_cancelled(session, order, reason, now, None)
        return order, True


def note_payment(session: Session, payment: Payment, info: dict[str, Any]) -> Payment:
    """Merge ``info`` into what the provider keeps on ``payment``; a key
    given None is removed. ``info["flag"]`` puts the payment on the staff
    page (``flagged``) until it is removed, e.g. once the money went back."""
    with atomic(session):
        current = _locked_payment(session, payment)
        merged = {**current.info, **info}
        current.info = {key: value for key, value in merged.items() if value is not None}
        return current


def _locked_payment(session: Session, payment: Payment) -> Payment:
    """The payment re-read under its account's lock (the ledger's, which every writer of the account takes)."""
    account_id = session.scalar(select(Order.account_id).join(Payment).where(Payment.id == payment.id))
    if account_id is None:
        raise OrderError(N_("There is no such payment."))
    ledger.lock_accounts(session, [account_id])
    return session.get_one(Payment, payment.id, populate_existing=True)


def _waiting_since(cutoff: datetime) -> Select[Order]:
    return (
        select(Order)
        .where(Order.status == "pending", Order.method.in_(MANUAL_METHODS), Order.created_at <= cutoff)
        .order_by(Order.id)
    )


def remind_due(session: Session, *, now: datetime, days: int) -> list[Order]:
    """Orders waiting for a transfer or a cheque for ``days`` days and not
    reminded yet: each is marked reminded (once) and returned for the
    reminder mail. Run it as often as you like."""
    now = utc(now)
    with atomic(session):
        due = []
        waiting = _waiting_since(now - timedelta(days=days)).where(Order.reminded_at.is_(None))
        for order in list(session.scalars(waiting)):
            # Compare-and-set: of two runs at once, one reminds each order.
            taken = cast(CursorResult[Any], session.execute(
                update(Order).where(Order.id == order.id, Order.reminded_at.is_(None))
                .values(reminded_at=now).execution_options(synchronize_session=False)))
            if taken.rowcount != 1:
                continue
            order.reminded_at = now
            log_event(session, order, "reminded", now)
            awaited = awaited_payment(session, order)
            tell_buyer(session, "order_reminder", order, now, payment_id=awaited.id if awaited else None)
            due.append(order)
        return due


def cancel_overdue(session: Session, *, now: datetime, days: int, reason: Callable[[Order], str]) -> list[Order]:
    """Cancel the orders still unpaid ``days`` days after they were placed,
    each with ``reason(order)`` (in the client's language); the cancelled
    ones are returned for the mail. An order that has received part of its
    money is left open (see ``cancel_order``). Run it as often as you like."""
    now = utc(now)
    cancelled = []
    nothing_received = ~exists().where(Payment.order_id == Order.id, Payment.status == "confirmed")
    for order_id in session.scalars(select(Order.id).where(
            Order.id.in_(_waiting_since(now - timedelta(days=days)).with_only_columns(Order.id)),
            nothing_received)).all():
        order = session.get_one(Order, order_id)
        before = order.status
        try:
            order = cancel_order(session, order, reason=reason(order), now=now)
        except MoneyReceived:
            continue  # some arrived since the query: no longer overdue
        if before == "pending" and order.status == "cancelled":
            cancelled.append(order)
    return cancelled


# --- Subscriptions ----------------------------------------------------------

def cancel_subscription(session: Session, subscription: Subscription, *, by: User, now: datetime,
                        reason: str) -> Subscription:
    """The owner stops renewing: tickets stay covered to the end of the
    month (billing.subscriptions.cancel), and a renewal awaiting payment is
    cancelled with ``reason``, unless part of its money has arrived (then it
    stays, as cancel_order says, and pays a period when the rest comes).
    Cancelling twice changes nothing."""
    now = utc(now)
    with atomic(session):
        if not by.is_owner or by.account_id != subscription.account_id:
            raise OrderError(N_("Only an owner of the account can cancel its subscription."))
        ledger.lock_accounts(session, [subscription.account_id])
        current = session.get_one(Subscription, subscription.id, populate_existing=True)
        if current.cancelled_at is not None:
            return current
        if current.ends_at is not None and current.ends_at <= now:
            raise OrderError(N_("This subscription has already ended."))
        renewal = current.renewal_order
        if renewal is not None and renewal.status != "pending":
            renewal = None  # paid or cancelled already: nothing to stop
        arrived = received(session, renewal.id) if renewal is not None else 0
        if renewal is not None and arrived:
            raise MoneyReceived(N_("Order %(number)d has already received %(received)s for the next period: "
                                   "write to us to cancel."), number=renewal.id, received=arrived)
        subscriptions.cancel(current, by_id=by.id, now=now)
        if renewal is not None:
            mark_cancelled(session, renewal, reason, now, by)
        return current


def renew_subscriptions(session: Session, *, now: datetime, days: int, iban: str,
                        methods: tuple[str, ...]) -> list[tuple[Order, Payment]]:
    """Place the order for the next period of every subscription whose
    period ends within ``days`` days: the same pack at today's price, paid
    the way the last period was when that is a transfer or a cheque still
    offered, else by the first of ``methods``. Its buyer is the last
    period's, or an owner when that user has left. The caller asks the
    provider for the money. Safe beside a second run: the subscription's
    renewal order is set under the account's lock."""
    now = utc(now)
    placed = []
    for subscription_id in [s.id for s in subscriptions.due_for_renewal(session, now=now, days=days)]:
        with atomic(session):
            account_id = session.execute(select(Subscription.account_id)
                                         .where(Subscription.id == subscription_id)).scalar_one()
            ledger.lock_accounts(session, [account_id])
            current = session.get_one(Subscription, subscription_id, populate_existing=True)
            if current.ends_at is not None or current.renewal_order_id is not None:
                continue  # cancelled, or renewed by another run meanwhile
            last = current.periods[-1].order
            buyer = last.placed_by
            if buyer is None or buyer.removed_at is not None:
                buyer = outbox.owners(session, current.account_id)[0]
            method = last.method if last.method in MANUAL_METHODS and last.method in methods else methods[0]
            pack = current.pack
            # A subscription priced on request renews at the price its last period was agreed at.
            terms = catalogue_terms(pack) if pack.price is not None else Terms(
                last.unit_price, last.vat_rate_bp, last.price_includes_vat)
            order, payment = _new_order(session, current.account, pack, 1, terms.price(pack.currency, 1), method,
                                        buyer, now, iban, by_job=True, terms=terms)
            current.renewal_order_id = order.id
            placed.append((order, payment))
    return placed
