"""Card payments with Stripe Checkout (hosted): the buyer pays on Stripe's
page, and Forfait learns the outcome from Stripe itself.

Each payment gets one Checkout Session, created with an idempotency key
derived from the payment: asked twice, Stripe returns the same session.
Whatever says that something happened (the webhook, the buyer coming back
to the success page, ``flask stripe reconcile``) is only a trigger:
``settle`` fetches the session from Stripe and acts on what it says,
through the order services, so whichever comes first credits the order and
the others find it done.

    Stripe says                            Forfait does
    paid, the amounts agree                common.payments.confirm: credit, invoice, mail (once)
    paid, another amount or currency       flagged for staff, not credited; the payment stays
                                           pending: staff confirm it by hand or refund it
    paid, but the payment was closed       flagged for staff, not credited (the order was
    (its order cancelled meanwhile)        cancelled, or paid another way): refund it
    expired                                the payment is cancelled, and its order
    complete, the delayed debit declined   the payment failed, and its order is cancelled
    open, or a delayed debit processing    nothing yet

A flag stays on the staff page (billing.orders.flagged) until the money
goes back. Refunds: one credit note per Stripe refund, and with it its
share of the lot's units (billing.orders.refunds: in proportion to the money,
rounded up, from what is still unused), in one transaction.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

import stripe
from flask import url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from stripe.params import RefundCreateParams
from stripe.params.checkout import SessionCreateParams, SessionListParams

from billing.accounts.models import Account, User
from billing.clock import utc
from billing.errors import BillingError
from billing.ledger import services as ledger
from billing.orders import refunds, wording
from billing.orders import services as orders
from billing.orders.models import Order, Payment
from common import payments
from common.extensions import db
from common.payments import register
from common.payments.base import PaymentError, PaymentProvider

log = logging.getLogger(__name__)

# Checkout's page in the order's language (common.config.LANGUAGES), as
# Stripe names it; "auto" (the browser's) for any other.
CHECKOUT_LOCALES: dict[str, Literal["en", "fr", "es"]] = {"en": "en", "fr": "fr", "es": "es"}

# Currencies whose smallest unit for Stripe is not their ISO minor unit
# (Stripe wants ISK and UGX with two decimals that are always 00): an amount
# in Forfait's minor units would be charged a hundredth. Not offered.
UNITS_DIFFER = frozenset({"ISK", "UGX"})


class StripeFailed(PaymentError):
    """Stripe could not be asked (unreachable, or it refused the request)."""


class Busy(RuntimeError):
    """Another writer holds the account's lock: try again shortly (a webhook answers 503)."""


@register
class Card(PaymentProvider):
    identifier = "card"
    pending_template = "shop/checkout_card.html"

    @property
    def public_name(self) -> str:
        return str(_l("Card"))

    def unavailable_reason(self) -> str | None:
        if not self.config["STRIPE_SECRET_KEY"]:
            return str(_l("No Stripe key is set (STRIPE_SECRET_KEY): card payments cannot be taken."))
        if not self.config["STRIPE_WEBHOOK_SECRET"]:
            return str(_l("No webhook signing secret is set (STRIPE_WEBHOOK_SECRET): Stripe could not tell "
                          "Forfait when a card is paid or refunded."))
        return None

    def is_allowed(self, currency: str, total: int) -> bool:
        return super().is_allowed(currency, total) and currency not in UNITS_DIFFER

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(self.config["STRIPE_SECRET_KEY"],
                                   base_addresses={"api": self.config["STRIPE_API_BASE"]})

    def execute(self, session: Session, payment: Payment, *, now: datetime, return_url: str) -> str | None:
        """One Checkout Session for the payment; the buyer is sent to its page."""
        order = payment.order
        if order.reference is None:
            raise PaymentError(f"order {order.id} has no reference yet")
        ids = {"order_id": str(order.id), "payment_id": str(payment.id)}
        params: SessionCreateParams = {
            "mode": "payment",
            # The order's gross as one line: its quantity and VAT are on our invoice.
            "line_items": [{"quantity": 1, "price_data": {
                "currency": payment.currency.lower(), "unit_amount": payment.amount,
                "product_data": {"name": wording.title(order, order.language)}}}],
            "client_reference_id": order.reference,
            "metadata": ids,
            # Also on the PaymentIntent, so staff looking at a payment in Stripe's dashboard see the order.
            "payment_intent_data": {"metadata": ids, "description": f"{order.reference} #{order.id}"},
            "locale": CHECKOUT_LOCALES.get(order.language, "auto"),
            # Stripe puts the session's id in place of the placeholder, which url_for would escape.
            "success_url": url_for("stripe.back", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": return_url,
        }
        if order.placed_by is not None:
            params["customer_email"] = order.placed_by.email
        try:
            checkout = self.client().v1.checkout.sessions.create(
                params=params, options={"idempotency_key": idempotency_key(payment)})
        except stripe.StripeError as error:
            log.warning("stripe: no checkout session for payment %s: %s", payment.id, error)
            reason = _("The card payment could not be started: nothing was charged. Please order again, "
                       "or choose a bank transfer.")
            orders.close_payment(session, payment, status="failed", reason=reason, now=now)
            raise StripeFailed(reason) from error
        orders.await_payment(session, payment, now=now, external_id=checkout.id,
                             info={"checkout_url": checkout.url})
        return checkout.url

    def pending_context(self, order: Order, payment: Payment) -> dict[str, Any]:
        return {"checkout_url": payment.info.get("checkout_url"),
                "check_url": url_for("stripe.back", session_id=payment.external_id)}

    def refund(self, session: Session, payment: Payment, amount: int, reason: str, *, now: datetime,
               by: User | None = None, key: str = "") -> str:
        """Refund ``amount`` of a confirmed card payment through Stripe, and
        record it at once (the webhook that follows finds it done), as made
        by ``by``. Returns Stripe's id of the refund."""
        if payment.status != "confirmed" or not payment.external_id:
            raise PaymentError(_("Only a confirmed card payment can be refunded."))
        # The same refund asked again (a double click, a retry) repeats the
        # key, and Stripe answers with the first refund instead of paying
        # twice: ``key`` is the form's, else the amount and the reason say it
        # (a second refund of the same amount within Stripe's 24 hours of
        # idempotency then needs another reason).
        digest = key or hashlib.sha256(reason.encode()).hexdigest()[:16]
        metadata = {"order_id": str(payment.order_id), "payment_id": str(payment.id), "note": reason}
        if by is not None:
            metadata["by"] = str(by.id)
        client = self.client()
        try:
            checkout = client.v1.checkout.sessions.retrieve(payment.external_id)
            params: RefundCreateParams = {"payment_intent": _id(checkout.payment_intent), "amount": amount,
                                          "reason": "requested_by_customer", "metadata": metadata}
            refund = client.v1.refunds.create(
                params=params,
                options={"idempotency_key": f"forfait-refund-{payment.id}-{amount}-{digest}"})
        except stripe.StripeError as error:
            raise StripeFailed(_("Stripe refused the refund: %(error)s", error=error.user_message or error)) from error
        settle_refunds(_id(refund.charge), now=now)
        return refund.id


def _id(value: str | stripe.PaymentIntent | stripe.Charge | None) -> str:
    """The id a Stripe field holds, or the id of the object when expanded."""
    if value is None:
        raise StripeFailed("Stripe's answer lacks the payment it is about")
    return value if isinstance(value, str) else value.id


def idempotency_key(payment: Payment) -> str:
    """The same for every attempt at one payment, different for any other
    (the creation time tells apart databases that reuse ids, e.g. a test
    database reset against the same Stripe account)."""
    return f"forfait-checkout-{payment.id}-{utc(payment.created_at):%Y%m%dT%H%M%S%f}"


def _card() -> Card:
    provider = payments.get("card")
    if not isinstance(provider, Card) or provider.unavailable_reason():
        raise StripeFailed(_("Card payments are not set up."))
    return provider


def payment_for(checkout_session_id: str) -> Payment | None:
    """The card payment whose Checkout Session this is, if it is ours."""
    if not checkout_session_id:
        return None
    return db.session.scalar(select(Payment).where(Payment.provider == "card",
                                                   Payment.external_id == checkout_session_id))


def open_payments() -> list[Payment]:
    """Card payments waiting for Stripe's word, oldest first."""
    return list(db.session.scalars(select(Payment).where(
        Payment.provider == "card", Payment.status == "pending", Payment.external_id.is_not(None)
    ).order_by(Payment.id)))


def state(checkout: Any) -> str:
    """What a Checkout Session (its payment_intent expanded) says: paid,
    expired, failed (a delayed debit declined), processing or open."""
    if checkout.payment_status in ("paid", "no_payment_required"):
        return "paid"
    if checkout.status == "expired":
        return "expired"
    intent = checkout.payment_intent
    if checkout.status == "complete":
        declined = intent is not None and intent.status in ("requires_payment_method", "canceled")
        return "failed" if declined else "processing"
    return "open"


def _disagreement(checkout: Any, payment: Payment) -> str | None:
    """Why the session cannot pay this payment, or None."""
    if checkout.amount_total != payment.amount or (checkout.currency or "").upper() != payment.currency:
        return "amount"
    if checkout.client_reference_id != payment.order.reference:
        return "reference"
    return None


@contextmanager
def _holding(account_id: int, *, wait: bool) -> Iterator[None]:
    """Take the account's lock (the ledger's) before a service runs, which
    then finds it held. ``wait=False`` (a webhook): on PostgreSQL, NOWAIT;
    SQLite, one lock for the whole file, waits its busy timeout. Either way
    a lock not had raises Busy, with nothing written."""
    try:
        if wait or db.session.get_bind().dialect.name != "postgresql":
            ledger.lock_accounts(db.session(), [account_id])
        else:
            db.session.execute(select(Account.id).where(Account.id == account_id).with_for_update(nowait=True))
        yield
    except OperationalError as error:
        db.session.rollback()
        # 55P03: lock_not_available (PostgreSQL); SQLite says it in words.
        if getattr(error.orig, "sqlstate", None) == "55P03" or "database is locked" in str(error.orig):
            raise Busy(f"account {account_id} is locked by another writer") from error
        raise


def settle(payment: Payment, *, now: datetime, wait: bool = True) -> str:
    """Ask Stripe about the payment's Checkout Session and act on the answer
    (the table at the top). Returns what happened: paid, duplicate,
    overpaid, flagged, expired, failed, processing or open. Raises
    StripeFailed when Stripe cannot be asked, Busy when ``wait`` is False
    and another writer holds the account."""
    if payment.external_id is None:
        raise PaymentError(f"payment {payment.id} has no Checkout Session")
    try:
        checkout = _card().client().v1.checkout.sessions.retrieve(payment.external_id,
                                                                  params={"expand": ["payment_intent"]})
    except stripe.StripeError as error:
        raise StripeFailed(str(error)) from error
    said = state(checkout)
    order = payment.order
    with _holding(order.account_id, wait=wait):
        if said == "paid":
            return _paid(checkout, payment, now)
        if said in ("expired", "failed"):
            with force_locale(order.language):  # the client reads it on the order page
                reason = (_("The card payment page expired before the payment was made.") if said == "expired"
                          else _("Your bank declined the payment."))
            orders.close_payment(db.session(), payment, now=now, reason=reason,
                                 status="cancelled" if said == "expired" else "failed")
        else:
            db.session.rollback()  # nothing to write: the lock goes
        return said


def _paid(checkout: Any, payment: Payment, now: datetime) -> str:
    payment = db.session.get_one(Payment, payment.id, populate_existing=True)
    if payment.status == "confirmed":
        db.session.rollback()
        return "duplicate"
    problem = "late" if payment.status != "pending" else _disagreement(checkout, payment)
    if problem:
        # Money we did not ask for, or not in this form: staff decide.
        if not payment.info.get("flag") and not payment.info.get("refunded"):
            log.warning("stripe: session %s paid %s %s for payment %s (%s): flagged, not credited",
                        checkout.id, checkout.amount_total, checkout.currency, payment.id, problem)
            orders.note_payment(db.session(), payment, {"flag": {
                "reason": problem, "amount": checkout.amount_total, "currency": (checkout.currency or "").upper(),
                "stripe": checkout.id, "at": utc(now).isoformat()}})
        db.session.rollback()  # flagged already, or just now by its own unit of work: the lock goes
        return "flagged"
    outcome = payments.confirm(payment, now=now, amount=checkout.amount_total, note=f"Stripe {checkout.id}")
    return outcome.status


def settle_refunds(charge_id: str, *, now: datetime, wait: bool = True) -> str:
    """Ask Stripe about a refunded charge and record its refunds, oldest
    first: a credit note per refund and its share of the lot's units
    (billing.orders.refunds.record, once each by the refund's id, each its
    own unit of work). Money that was never credited (a flagged payment) just
    clears the flag. Returns refunded, flagged or unknown (not a charge of
    ours)."""
    client = _card().client()
    try:
        charge = client.v1.charges.retrieve(charge_id, params={"expand": ["refunds"]})
        listing: SessionListParams = {"payment_intent": _id(charge.payment_intent), "limit": 1}
        found = client.v1.checkout.sessions.list(params=listing)
    except stripe.StripeError as error:
        raise StripeFailed(str(error)) from error
    payment = payment_for(found.data[0].id) if found.data else None
    if payment is None:
        return "unknown"
    # A pending refund is money on its way back; a failed one never left.
    # Oldest first, as each share is computed from the ones before: Stripe
    # lists the newest first, and refunds of the same second in that order.
    found_refunds = sorted((refund for refund in reversed(charge.refunds.data if charge.refunds else [])
                            if refund.status in ("succeeded", "pending")),
                           key=lambda refund: getattr(refund, "created", 0) or 0)
    with _holding(payment.order.account_id, wait=wait):
        payment = db.session.get_one(Payment, payment.id, populate_existing=True)
        if payment.status != "confirmed":
            orders.note_payment(db.session(), payment, {"flag": None, "refunded": charge.amount_refunded})
            return "refunded"
        order = db.session.get_one(Order, payment.order_id, populate_existing=True)
        try:
            for refund in found_refunds:
                metadata = refund.metadata or {}
                with force_locale(order.language):
                    reason = metadata.get("note") or _("Refunded to the card (%(id)s)", id=refund.id)
                refunds.record(db.session(), order, refund.amount, reason, key=f"stripe:{refund.id}", now=now,
                               seller=payments.seller(), by=_staff(metadata.get("by")))
        except BillingError as error:
            # Each refund is a unit of work: the one refused wrote nothing, those before it stay.
            log.error("stripe: charge %s of payment %s cannot be credited: %s", charge.id, payment.id, error)
            orders.note_payment(db.session(), payment, {"flag": {
                "reason": "refund", "amount": charge.amount_refunded, "currency": payment.currency,
                "stripe": charge.id, "at": utc(now).isoformat()}})
            return "flagged"
    return "refunded"


def _staff(user_id: str | None) -> User | None:
    """The admin a refund's metadata names (Forfait's own refunds), if any.
    One no longer an admin when Stripe reports the refund is not named: the
    money went back all the same, and the credit note must follow."""
    user = db.session.get(User, int(user_id)) if user_id and user_id.isdigit() else None
    return user if user is not None and user.is_admin else None
