"""Cheque: the same waiting path as a transfer, with its own instructions
(to whom the cheque is made out, where to send it, what to write on the back)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from billing.orders import references
from billing.orders.models import Order, Payment
from common.payments import register
from common.payments.base import ManualPaymentProvider


@register
class Cheque(ManualPaymentProvider):
    identifier = "cheque"
    pending_template = "shop/checkout_cheque.html"

    @property
    def public_name(self) -> str:
        return str(_l("Cheque"))

    def pending_context(self, order: Order, payment: Payment) -> dict[str, Any]:
        return {
            "payee": self.config["CHEQUE_PAYEE"],
            "address": self.config["CHEQUE_ADDRESS"],
            "reference": references.pretty(order.reference or ""),
        }
