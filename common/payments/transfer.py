"""Bank transfer: the order waits until staff see the money arrive.

The instructions carry the provider's IBAN, the exact amount and the
order's reference, and a QR code the payer's banking app scans: a Swiss
QR-bill (qrbill) for CHF, an EPC QR code (segno) for EUR, which is the only
currency the EPC format knows.
"""

from __future__ import annotations

import io
import re
from typing import Any

import qrbill
import segno.helpers
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from schwifty import IBAN

from billing.orders import references
from billing.orders.models import Order, Payment
from common.i18n import to_decimal
from common.payments import register
from common.payments.base import ManualPaymentProvider, PaymentError

# "75011 Paris", "1000 Lausanne", "CH-1000 Lausanne": the postcode line of an address.
_POSTCODE_CITY = re.compile(r"^(?:[A-Z]{1,2}-)?(\d{4,5})\s+(.+)$")


def creditor_address(name: str, address: str, country: str) -> dict[str, str]:
    """The provider's address as the QR-bill's structured fields: the first
    line is the street, the line that starts with a postcode gives the
    postcode and the town. Combined (unstructured) addresses are refused by
    Swiss banks since November 2025."""
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        found = _POSTCODE_CITY.match(line)
        if found and index > 0:
            return {"name": name, "street": lines[0], "pcode": found.group(1), "city": found.group(2),
                    "country": country}
    raise PaymentError(f"PROVIDER_ADDRESS needs a street line, then a line with the postcode and the town; "
                       f"got {address!r}")


@register
class BankTransfer(ManualPaymentProvider):
    identifier = "transfer"
    pending_template = "shop/checkout_transfer.html"

    @property
    def public_name(self) -> str:
        return str(_l("Bank transfer"))

    @property
    def iban(self) -> str:
        return self.config["PROVIDER_IBAN"]

    def unavailable_reason(self) -> str | None:
        if not self.iban:
            return str(_l("No IBAN is set (PROVIDER_IBAN): clients cannot be told where to send a transfer."))
        return None

    def pending_context(self, order: Order, payment: Payment) -> dict[str, Any]:
        iban = IBAN(self.iban)
        return {
            "iban": iban.formatted,
            "bic": str(iban.bic) if iban.bic else "",
            "account_holder": self.config["PROVIDER_NAME"],
            "reference": references.pretty(order.reference or ""),
            "qr": self.qr_svg(order, payment),
        }

    # --- Payment codes --------------------------------------------------

    def qr_svg(self, order: Order, payment: Payment) -> Markup | None:
        """The code to scan, as inline SVG: the QR-bill's payment part for
        CHF into a Swiss account, the EPC code for EUR; None otherwise."""
        if payment.currency == "CHF" and self.iban[:2] in ("CH", "LI"):
            out = io.StringIO()
            self.swiss_qr_bill(order, payment).as_svg(out, full_page=False)
            # The XML declaration would be out of place inside HTML.
            return Markup(re.sub(r"^<\?xml[^>]*\?>\s*", "", out.getvalue()))
        if payment.currency == "EUR":
            return Markup(self.epc_qr(order, payment).svg_inline(scale=4, title=str(_l("EPC payment code"))))
        return None

    def qr_png(self, order: Order, payment: Payment) -> bytes | None:
        """The same code as a PNG, for a mail (mail clients do not show inline
        SVG): the QR-bill's payload at its error correction level, or the EPC code."""
        if payment.currency == "CHF" and self.iban[:2] in ("CH", "LI"):
            code = segno.make(self.swiss_qr_bill(order, payment).qr_data(), error="m", micro=False)
        elif payment.currency == "EUR":
            code = self.epc_qr(order, payment)
        else:
            return None
        out = io.BytesIO()
        code.save(out, kind="png", scale=5, border=4)
        return out.getvalue()

    def epc_qr(self, order: Order, payment: Payment) -> segno.QRCode:
        """The EPC (SEPA credit transfer) code, version 002: name, IBAN,
        amount and the RF reference as structured remittance information."""
        if payment.currency != "EUR":
            raise PaymentError("an EPC payment code is for euros only")
        return segno.helpers.make_epc_qr(
            name=self.config["PROVIDER_NAME"][:70], iban=self.iban, amount=to_decimal(payment.amount, "EUR"),
            reference=order.reference,
        )

    def swiss_qr_bill(self, order: Order, payment: Payment) -> qrbill.QRBill:
        """The Swiss QR-bill: a QR reference with a QR-IBAN, else the RF reference."""
        if payment.currency != "CHF" or self.iban[:2] not in ("CH", "LI"):
            raise PaymentError("a Swiss QR-bill is for Swiss francs paid into a Swiss or Liechtenstein account")
        language = get_locale().language if get_locale() else "en"
        return qrbill.QRBill(
            account=self.iban,
            creditor=creditor_address(self.config["PROVIDER_NAME"][:70], self.config["PROVIDER_ADDRESS"],
                                      self.config["PROVIDER_COUNTRY"]),
            amount=str(to_decimal(payment.amount, "CHF")),
            currency="CHF",
            reference_number=order.reference,
            additional_information=f"{_l('Order')} {order.id}",
            language=language if language in ("en", "fr", "de", "it") else "en",
        )
