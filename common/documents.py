"""PDF documents made from HTML templates with WeasyPrint: invoices and
credit notes (in the language they were issued in) and payment
instructions (with the QR code to scan)."""

from __future__ import annotations

import functools

from flask import current_app, render_template
from flask_babel import force_locale

from billing.orders.models import Invoice, Order, Payment
from common.payments.base import PaymentProvider

PDF = "application/pdf"


def render_pdf(template: str, **context) -> bytes:
    html = render_template(template, **context)
    # base_url lets a template refer to static files by relative path; nothing is fetched from the network.
    return _pdf(html, current_app.static_folder)


@functools.lru_cache(maxsize=32)
def _pdf(html: str, base_url: str | None) -> bytes:
    """The PDF of this HTML, made once: the same document asked again (the
    order's mail, its page's download, a reminder) costs nothing the second
    time. A document is a function of its HTML and the static files."""
    # Imported here: WeasyPrint (with its fonts and fontTools) takes longer to
    # import than the rest of the app, and most processes (every command,
    # most requests) never make a PDF.
    from weasyprint import HTML

    return HTML(string=html, base_url=base_url).write_pdf()


def invoice_pdf(invoice: Invoice) -> bytes:
    with force_locale(invoice.language):
        return render_pdf("pdf/invoice.html", invoice=invoice)


def invoice_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"


def invoice_attachment(invoice: Invoice) -> tuple[str, bytes, str]:
    return invoice_filename(invoice), invoice_pdf(invoice), PDF


def instructions_pdf(order: Order, payment: Payment, provider: PaymentProvider) -> bytes:
    """How to pay, in the language of the current request (or of the order, for mail)."""
    return render_pdf("pdf/instructions.html", order=order, payment=payment, provider=provider,
                      pending=provider.pending_context(order, payment))


def instructions_filename(order: Order) -> str:
    return f"order-{order.id}-payment.pdf"


def instructions_attachment(order: Order, payment: Payment, provider: PaymentProvider) -> tuple[str, bytes, str]:
    with force_locale(order.language):
        return instructions_filename(order), instructions_pdf(order, payment, provider), PDF
