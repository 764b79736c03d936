"""Payment providers and the services that views, webhooks and jobs call.
README.md beside this file is the guide for writing a provider.

The registry: ``register`` a PaymentProvider class; ``enabled`` gives the
providers the checkout offers (PAYMENT_METHODS, in that order, those whose
``is_allowed`` agrees); ``get`` one by identifier.

The services wrap billing.orders and billing.orders.invoices with what needs the
application: the seller's details from the settings. The messages that
follow a change are queued by billing in its transaction (billing.notifications.outbox).
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from billing.accounts.models import User
from billing.orders import refunds
from billing.orders import services as orders
from billing.orders.invoices import Seller
from billing.orders.models import Order, Payment
from common.extensions import db
from common.payments.base import PaymentError, PaymentProvider

__all__ = ["PaymentError", "PaymentProvider", "begin", "cancel", "cancel_overdue", "configured", "confirm",
           "enabled", "get", "refund", "register", "remind_due", "renew_subscriptions", "seller", "statuses"]

_registry: dict[str, type[PaymentProvider]] = {}


def register(provider: type[PaymentProvider]) -> type[PaymentProvider]:
    """Class decorator: make ``provider`` known under its identifier."""
    _registry[provider.identifier] = provider
    return provider


def get(identifier: str) -> PaymentProvider | None:
    """The provider ``identifier``, if PAYMENT_METHODS lists it."""
    if identifier not in _registry or identifier not in current_app.config["PAYMENT_METHODS"]:
        return None
    return _registry[identifier](current_app.config)


def provider_of(payment: Payment) -> PaymentProvider:
    """The provider of a payment placed with one PAYMENT_METHODS lists.
    LookupError if it was taken off the list since: nothing can go on."""
    provider = get(payment.provider)
    if provider is None:
        raise LookupError(f"payment {payment.id}: {payment.provider!r} is not in PAYMENT_METHODS")
    return provider


def configured() -> list[PaymentProvider]:
    """Every provider PAYMENT_METHODS lists, ready or not, in its order."""
    return [_registry[name](current_app.config) for name in current_app.config["PAYMENT_METHODS"] if name in _registry]


def statuses() -> list[tuple[str, str, str | None]]:
    """(identifier, name, why it is not offered or None) of each method
    PAYMENT_METHODS lists: what the staff page shows."""
    found: list[tuple[str, str, str | None]] = []
    for name in current_app.config["PAYMENT_METHODS"]:
        if name not in _registry:
            found.append((name, name, str(_l("Not installed in this version of Forfait."))))
            continue
        provider = _registry[name](current_app.config)
        found.append((name, provider.public_name, provider.unavailable_reason()))
    return found


def enabled(currency: str, total: int) -> list[PaymentProvider]:
    """The providers the checkout offers for an order of ``total`` in ``currency``."""
    return [provider for provider in configured() if provider.is_allowed(currency, total)]


def begin(order: Order, payment: Payment, *, now: datetime, return_url: str) -> str | None:
    """Ask the provider of a payment just placed for the money: the
    instructions of a transfer or a cheque, a card's checkout page. Returns
    where to send the payer (None: the order's own page); a payment already
    asked for (the same form sent twice) is left as it is. PaymentError
    when the provider cannot take it now."""
    if payment.status != "created":
        return None
    provider = provider_of(payment)
    provider.prepare(order, payment)
    return provider.execute(db.session(), payment, now=now, return_url=return_url)


def seller() -> Seller:
    config = current_app.config
    return Seller(name=config["PROVIDER_NAME"], address=config["PROVIDER_ADDRESS"], email=config["PROVIDER_EMAIL"],
                  vat_id=config["PROVIDER_VAT_ID"])


# --- Services ---------------------------------------------------------------

def confirm(payment: Payment, *, now: datetime, amount: int | None = None, received_at: datetime | None = None,
            by: User | None = None, note: str = "") -> orders.Outcome:
    """Record that ``payment`` arrived (billing.orders.confirm_payment); the
    call that makes the order paid queues the invoice's mail. Safe to call
    from a webhook, a return page and a staff form at once."""
    return orders.confirm_payment(db.session(), payment, seller=seller(), now=now, amount=amount,
                                  received_at=received_at, by=by, note=note)


def cancel(order: Order, *, reason: str, now: datetime, by: User | None = None) -> Order:
    """Cancel an unpaid order and tell the client why."""
    return orders.cancel_order(db.session(), order, reason=reason, now=now, by=by)


def remind_due(now: datetime) -> list[Order]:
    """Remind, once, each order waiting TRANSFER_REMIND_DAYS for its transfer or cheque."""
    return orders.remind_due(db.session(), now=now, days=current_app.config["TRANSFER_REMIND_DAYS"])


def cancel_overdue(now: datetime) -> list[Order]:
    """Cancel each order still unpaid TRANSFER_CANCEL_DAYS after it was placed, and tell the client."""
    days = current_app.config["TRANSFER_CANCEL_DAYS"]

    def reason(order: Order) -> str:
        with force_locale(order.language):  # the client reads it on the order page
            return _("No payment arrived within %(days)d days.", days=days)

    return orders.cancel_overdue(db.session(), now=now, days=days, reason=reason)


def renew_subscriptions(now: datetime) -> list[Order]:
    """Order the next period of each subscription ending within
    SUBSCRIPTION_RENEW_DAYS, by transfer or cheque (whichever is offered:
    a card is not charged without its holder), and send its instructions."""
    config = current_app.config
    manual = tuple(p.identifier for p in configured() if p.manual and p.unavailable_reason() is None)
    if not manual:
        return []
    placed = orders.renew_subscriptions(db.session(), now=now, days=config["SUBSCRIPTION_RENEW_DAYS"],
                                        iban=config["PROVIDER_IBAN"], methods=manual)
    for _order, payment in placed:
        provider_of(payment).execute(db.session(), payment, now=now, return_url="")
    return [order for order, _payment in placed]


def refund(order: Order, amount: int, reason: str, *, key: str, now: datetime, by: User) -> refunds.Refund:
    """Staff refund ``amount`` of a paid order (billing.orders.refunds): a credit
    note and its share of the units, once per ``key``. A card's money goes
    back through Stripe; a transfer's or a cheque's is sent back by hand."""
    charged = db.session.scalar(select(Payment).where(Payment.order_id == order.id, Payment.provider == "card",
                                                      Payment.status == "confirmed"))
    if charged is None:
        return refunds.refund_order(db.session(), order, amount, reason, by=by, now=now, key=key, seller=seller())
    # Checked before Stripe is asked: money sent back cannot be refused afterwards.
    refunds.check(db.session(), order, amount, reason, by=by)
    db.session.rollback()  # only read: no transaction held while Stripe answers
    provider = get("card")
    if provider is None:
        raise PaymentError(_("Card payments are not set up."))
    refund_id = provider.refund(db.session(), charged, amount, reason.strip(), now=now, by=by, key=key)
    recorded = refunds.done(db.session(), f"stripe:{refund_id}")
    if recorded is None:  # Stripe paid it back, but the credit note failed: the payment is flagged
        raise PaymentError(_("Stripe refunded the money, but the credit note could not be issued: see the "
                             "flagged payments."))
    return refunds.Refund(recorded.note, recorded.units)


# The providers of this package register themselves on import.
from common.payments import card, cheque, transfer  # noqa: E402,F401
