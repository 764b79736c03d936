"""Cheque: the same waiting path as a transfer, with its own instructions
(to whom the cheque is made out, where to send it, what to write on the back)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from billing import orders, references
from billing.models import Order
from billing.order_models import Payment
from shop.payments import register
from shop.payments.base import PaymentProvider


@register
class Cheque(PaymentProvider):
    identifier = "cheque"
    manual = True
    pending_template = "shop/checkout_cheque.html"

    @property
    def public_name(self) -> str:
        return str(_l("Cheque"))

    def execute(self, session: Session, payment: Payment, *, now: datetime, return_url: str) -> str | None:
        orders.await_payment(session, payment, now=now)
        return None

    def pending_context(self, order: Order, payment: Payment) -> dict[str, Any]:
        return {
            "payee": self.config["CHEQUE_PAYEE"],
            "address": self.config["CHEQUE_ADDRESS"],
            "reference": references.pretty(order.reference or ""),
        }
