"""The one small interface every payment provider implements (pretix's
shape): bank transfer, cheque and card are three classes of it, and a new
way to pay costs one more.

A provider never changes an order's state itself: it asks the money
(``execute``), shows what the payer does next (``pending_template``), and
hands what arrived to ``common.payments.confirm``, the one service that
records money, marks the order paid, grants the lot and issues the invoice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from billing.accounts.models import User
from billing.orders import services as orders
from billing.orders.models import Order, Payment


class PaymentError(RuntimeError):
    """The provider cannot do what was asked; the message is meant for the user."""


class PaymentProvider:
    """Subclass it, set ``identifier`` (one of billing.models.ORDER_METHODS)
    and register the class with ``common.payments.register``."""

    identifier: ClassVar[str]
    # True when a person confirms that the money arrived (transfer, cheque):
    # the order then waits on the staff page, with reminders and a deadline.
    manual: ClassVar[bool] = False
    # Shown on the order page while the payment is pending; receives
    # ``order``, ``payment``, ``provider`` and ``pending_context()``.
    pending_template: ClassVar[str]

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    @property
    def public_name(self) -> str:
        """The method's name as buyers read it, in their language."""
        raise NotImplementedError

    def unavailable_reason(self) -> str | None:
        """Why the provider cannot take payments with the current settings
        (shown to staff), or None when it can."""
        return None

    def is_allowed(self, currency: str, total: int) -> bool:
        """Whether the checkout offers this method for an order of ``total``
        minor units of ``currency``."""
        return self.unavailable_reason() is None and total > 0

    def prepare(self, order: Order, payment: Payment) -> None:
        """Check, before anything is asked of the payer, that this payment
        can be taken; raise PaymentError if not. Never moves money."""

    def execute(self, session: Session, payment: Payment, *, now: datetime, return_url: str) -> str | None:
        """Ask for the money: the URL to send the payer to (a hosted payment
        page, which comes back to ``return_url``), or None to show the
        pending page. Must leave the payment ``pending`` (billing.orders.
        await_payment) or raise PaymentError."""
        raise NotImplementedError

    def pending_context(self, order: Order, payment: Payment) -> dict[str, Any]:
        """What ``pending_template`` needs beyond the order and the payment."""
        return {}

    def refund(self, session: Session, payment: Payment, amount: int, reason: str, *, now: datetime,
               by: User | None = None, key: str = "") -> str:
        """Send ``amount`` back to the payer, as asked by ``by``, once per
        ``key``; returns the provider's id of the refund. Providers that
        cannot (a transfer is refunded by hand from the bank) raise
        PaymentError, and ``common.payments.refund`` records the credit note
        and the units."""
        raise PaymentError(f"{self.identifier} payments are refunded by hand, from the bank")


class ManualPaymentProvider(PaymentProvider):
    """Money a person sees arrive (a transfer, a cheque): asking for it is
    showing the instructions, and the order waits on the staff page."""

    manual = True

    def execute(self, session: Session, payment: Payment, *, now: datetime, return_url: str) -> str | None:
        orders.await_payment(session, payment, now=now)
        return None
