"""What an order is for, in words: a pack's name, or what the bill of an
overage covers (billing.orders.overage_bills).

Billing has no Flask and no request language, yet some of these words are
written once and kept (an invoice line, a cancellation's reason): they are
translated here with Babel's catalogues, the ones Flask-Babel reads, in the
language the order's documents go out in.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path

from babel.numbers import format_currency, get_currency_precision
from babel.support import NullTranslations, Translations

from billing.errors import N_
from billing.models import localized
from billing.orders.models import Order

TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"



OVERAGE_TITLE = N_("Overage on ticket #%(ticket)d: %(minutes)d min")
OVERAGE_LINE = N_("Overage on ticket #%(ticket)d: %(minutes)d min at %(rate)s an hour")


@cache
def _catalogue(language: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS), [language])


def translate(message: str, language: str, **params: object) -> str:
    return _catalogue(language).gettext(message) % params


def money(minor: int, currency: str, language: str) -> str:
    return format_currency(Decimal(minor).scaleb(-get_currency_precision(currency)), currency, locale=language)


def overage_minutes(order: Order) -> int:
    """The working time an overage's bill covers: its units, in minutes."""
    return order.quantity * order.billed_overage.ticket.policy.unit_minutes


def title(order: Order, language: str) -> str:
    """What was ordered, in ``language``: the pack (× items), or the overage billed."""
    if order.overage is not None:
        return translate(OVERAGE_TITLE, language, ticket=order.overage.ticket_id, minutes=overage_minutes(order))
    name = localized(order.ordered_pack.name, language)
    return f"{name} × {order.quantity}" if order.quantity > 1 else name


def invoice_line(order: Order) -> str:
    """The invoice's line, in the order's language: the pack's name, or the
    overage's ticket, time and hourly rate."""
    if order.overage is None:
        name: str = localized(order.ordered_pack.name, order.language)
        return name
    overage = order.overage
    if overage.hourly_rate is None:
        raise ValueError(f"order {order.id} bills overage {overage.id}, which has no hourly rate")
    return translate(OVERAGE_LINE, order.language, ticket=overage.ticket_id, minutes=overage_minutes(order),
                     rate=money(overage.hourly_rate, order.currency, order.language))
