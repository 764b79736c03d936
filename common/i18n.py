"""Locale choice and Babel formatting for templates."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from babel import dates as babel_dates
from babel.numbers import get_currency_precision
from flask import Blueprint, current_app, has_request_context, redirect, request, session, url_for
from flask_babel import format_currency, format_date, format_decimal, format_time, get_locale, get_translations
from flask_babel import gettext as _
from flask_login import current_user

from billing.errors import BillingError
from billing.ledger.rules import unit_label
from billing.models import Translated, localized
from billing.service.levels import provider_timezone
from billing.transaction import atomic
from common.extensions import db
from common.safety import safe_next

bp = Blueprint("i18n", __name__)


def select_timezone() -> str:
    """Times read on the provider's clock, the one its opening hours are set
    in (billing.service), not UTC, which no office manager lives in."""
    return provider_timezone(db.session())


def select_locale() -> str:
    """The user's choice, then the session's, then Accept-Language; outside a
    request (command line, workers) the default, so lazy text still renders."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.language in languages:
        return current_user.language
    if session.get("lang") in languages:
        return session["lang"]
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def current_locale() -> str:
    return str(get_locale())


def translate_plural(singular: str, plural: str, num: int) -> str:
    """ngettext for billing's texts: billing.ledger.rules fills in its own
    placeholders, where flask_babel's ngettext would fill in ``num`` first
    and fail on the others."""
    return get_translations().ngettext(singular, plural, num)


def translate(message: str) -> str:
    """gettext for billing's texts, which fill in their own placeholders."""
    return get_translations().gettext(message)


@bp.app_template_filter("localized")
def localized_filter(text: Translated | None) -> str:
    """A provider's text in the visitor's language."""
    return localized(text, current_locale())


@bp.app_template_filter()
def duration(minutes: int) -> str:
    """``11 h 10 min``: working time the way a client reads a balance."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return _("%(num)d min", num=rest)
    if not rest:
        return _("%(num)d h", num=hours)
    return _("%(hours)d h %(minutes)d min", hours=hours, minutes=rest)


@bp.app_template_filter()
def quantity(amount: int, unit: str) -> str:
    """A quantity of units; time is shown as time, not as a count of minutes."""
    if unit == "minute":
        return duration(amount)
    # unit_label's other units; any other string reads as tickets, as it did there.
    return unit_label("credit" if unit == "credit" else "ticket", amount, translate_plural)


def to_decimal(minor: int, currency: str) -> Decimal:
    """Minor units to an exact Decimal amount, for display only."""
    return Decimal(minor).scaleb(-get_currency_precision(currency))


# CLDR's currency spacing, which Babel does not apply: a currency code written
# against the digits ("CHF950.00" in English) gets a no-break space between.
_CODE_THEN_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def money(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    return _CODE_THEN_DIGIT.sub("\u00a0", format_currency(to_decimal(minor, currency), currency))


def plain_amount(minor: int, currency: str) -> str:
    """``950.00 CHF``: locale-free, for scripts (the catalogue list contract)."""
    return f"{to_decimal(minor, currency):f} {currency}"


def refusal(error: BillingError) -> str:
    """A billing refusal in the reader's language, its dates written their way."""
    params = {name: format_date(value, "long") if isinstance(value, date) else value
              for name, value in error.params.items()}
    return _(error.message, **params)


def percent(basis_points: int) -> str:
    return format_decimal(Decimal(basis_points).scaleb(-2), format="#,##0.##") + " %"


def span(value: timedelta | None) -> str:
    """``2 h 30 min``: a length of (opening) time, to the nearest minute."""
    return duration(round(value.total_seconds() / 60)) if value is not None else ""


def weekday_name(index: int) -> str:
    """``Monday`` for 0: a weekday's name, capitalised, in the reader's language (CLDR's, by Babel)."""
    return str(babel_dates.get_day_names("wide", locale=get_locale())[index]).capitalize()


def month_name(value: date, width: str = "long") -> str:
    """``December 2026`` (long) or ``Dec`` (short), in the reader's language."""
    return babel_dates.format_date(value, "LLLL y" if width == "long" else "LLL", locale=get_locale())


def decimal1(value: float) -> str:
    """``4.2``, ``4,2``: one decimal, as the reader writes it."""
    return format_decimal(round(value, 1), format="0.0")


def day(value: date | datetime | None) -> str:
    return format_date(value, format="medium") if value else ""


def moment(value: datetime | None) -> str:
    """``Dec 7, 2026 12:30 AM``: a day and its time, both on the provider's
    clock (select_timezone), as every staff page reads times."""
    return f"{format_date(value, format='medium')} {format_time(value, format='short')}" if value else ""


@bp.post("/language")
def set_language():
    lang = request.form.get("lang", "")
    if lang not in current_app.config["LANGUAGES"]:
        return _("Unknown language."), 400
    session["lang"] = lang
    if current_user.is_authenticated:
        with atomic(db.session()):
            current_user.language = lang
    return redirect(safe_next(request.form.get("next"), url_for("shop.catalogue")))


def init_app(app) -> None:
    app.jinja_env.filters.update(money=money, percent=percent, day=day, moment=moment, span=span, decimal1=decimal1,
                               month_long=month_name, month_short=lambda v: month_name(v, "short"))
    app.jinja_env.globals.update(weekday_name=weekday_name)
    app.jinja_env.globals.update(get_locale=get_locale)
    app.register_blueprint(bp)

