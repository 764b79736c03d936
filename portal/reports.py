"""The provider's reports (admins, issue 15.2): sales, unused credit owed,
time logged, overage and ratings, each for a month, as a page and as a CSV
download (``?format=csv``). The figures are billing.reports'; this module
only picks the month, draws the charts' geometry and writes the CSV.

Months are calendar months in UTC, as the ledger's statements count them."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, make_response, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from billing import clock
from billing.catalogue.models import RequestKind
from billing.models import localized
from billing.reports import activity, credit
from common import charts
from common.extensions import db
from common.fragments import page_or_fragment
from common.i18n import to_decimal
from common.identity.access import admin_required
from common.safety import csv_writer

bp = Blueprint("reports", __name__, url_prefix="/staff/reports")

HISTORY_MONTHS = 12
REPORTS = ("sales", "credit", "time", "overage", "ratings")


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _moment(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _span(month: date) -> tuple[datetime, datetime]:
    """The month's first moment and the next month's: the reports' [start, end)."""
    return _moment(month), _moment(_add_months(month, 1))


def _month() -> tuple[date, str | None]:
    """The month asked for (default: this one) and what is wrong with it."""
    this = clock.now().date().replace(day=1)
    asked = (request.args.get("month") or "").strip()
    if not asked:
        return this, None
    try:
        return date.fromisoformat(f"{asked}-01"), None
    except ValueError:
        return this, _("A month is written YYYY-MM, for example %(month)s.", month=this.strftime("%Y-%m"))


def _amount(minor: int, currency: str) -> str:
    """A plain decimal amount for a spreadsheet: 705.25."""
    return f"{to_decimal(minor, currency):f}"


def _csv(name: str, month: date, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    response = make_response(out.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{month:%Y-%m}.csv"'
    return response


def _page(report: str, month: date, problem: str | None, **context: object) -> Response:
    return page_or_fragment(f"staff/reports/{report}.html", None, 400 if problem else 200, report=report,
                            month=month, problem=problem, reports=REPORTS, **context)


def _name(text: object) -> str:
    return str(localized(text, str(current_user.language or "en"))) if isinstance(text, dict) else str(text)


@bp.get("/")
@admin_required
def index():
    month, problem = _month()
    # The month's two headline figures on the cards leading to their
    # reports: what was sold (gross, per currency) and the credit owed at its end.
    start, end = _span(month)
    sold = activity.sales(db.session(), start, end).totals
    moves = credit.movements(credit.lot_histories(db.session(), until=end))
    owed = {row.currency: row.closing for row in credit.reconcile(moves, start, end)}
    return _page("index", month, problem, sold=sold, owed=owed)


@bp.get("/sales")
@admin_required
def sales():
    month, problem = _month()
    start, end = _span(month)
    found = activity.sales(db.session(), start, end)
    if request.args.get("format") == "csv" and not problem:
        return _csv("sales", month, ["month", "catalogue", "pack", "method", "currency", "orders", "net", "vat",
                                     "gross"],
                    ([key.month.strftime("%Y-%m"), _name(key.catalogue), _name(key.pack), key.method, key.currency,
                      amounts.count, _amount(amounts.net, key.currency), _amount(amounts.vat, key.currency),
                      _amount(amounts.gross, key.currency)] for key, amounts in found.rows))
    first = _add_months(month, 1 - HISTORY_MONTHS)
    history = activity.sales(db.session(), _moment(first), end)
    currencies = sorted({currency for _month_, currency in history.by_month})
    months = [_add_months(first, n) for n in range(HISTORY_MONTHS)]
    chart_list = []
    for currency in currencies:
        points = [(m, history.by_month.get((m, currency))) for m in months]
        chart = charts.columns(points, lambda p: p[1].net if p[1] else 0)
        if chart:
            chart_list.append((currency, chart))
    return _page("sales", month, problem, found=found, charts=chart_list)


@bp.get("/credit")
@admin_required
def owed():
    month, problem = _month()
    start, end = _span(month)
    # The schedule is of the credit owed at the end of the month, or of the
    # day asked for (``at``: at the end of that day, UTC).
    on_day, at_problem = _add_months(month, 1) - timedelta(days=1), None
    if request.args.get("at"):
        try:
            on_day = date.fromisoformat(request.args["at"])
        except ValueError:
            at_problem = _("Dates are written YYYY-MM-DD, for example %(day)s.", day=on_day.isoformat())
    problem = problem or at_problem
    moment = datetime.combine(on_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    moves = credit.movements(credit.lot_histories(db.session(), until=max(end, moment)))
    reconciliation = credit.reconcile(moves, start, end)
    schedule = credit.schedule_at(moves, moment)
    if request.args.get("format") == "csv" and not problem:
        rows: list[list[object]] = []
        for row in reconciliation:
            rows.append(["owed", "", row.currency, "opening", "", _amount(row.opening, row.currency)])
            rows += [["owed", "", row.currency, flow, "", _amount(row.flows[flow], row.currency)]
                     for flow in credit.FLOWS]
            rows.append(["owed", "", row.currency, "closing", "", _amount(row.closing, row.currency)])
        rows += [["expires", line.month.strftime("%Y-%m") if line.month else "never", line.currency, line.unit,
                  line.units, _amount(line.value, line.currency)] for line in schedule]
        return _csv("credit-owed", month, ["section", "month", "currency", "item", "units", "amount"], rows)
    lapsed = credit.breakage(moves, start, end)
    lots = {move.lot.lot_id: move.lot for move in moves}
    back = credit.rolled_over(lots.values(), start, end)
    by_month: dict[tuple[date | None, str], int] = {}
    for line in schedule:
        by_month[(line.month, line.currency)] = by_month.get((line.month, line.currency), 0) + line.value
    chart_list = []
    for currency in sorted({line.currency for line in schedule}):
        points = [(m, v) for (m, c), v in by_month.items() if c == currency and m is not None]
        chart = charts.columns(points, lambda p: p[1])
        if chart:
            chart_list.append((currency, chart))
    return _page("credit", month, problem, reconciliation=reconciliation, schedule=schedule, lapsed=lapsed,
                 back=back, charts=chart_list, on_day=on_day,
                 owed_then=credit.owed_at(moves, moment))


@bp.get("/time")
@admin_required
def time():
    month, problem = _month()
    start, end = _span(month)
    moves = credit.movements(credit.lot_histories(db.session(), until=end))
    report = activity.time_logged(db.session(), moves, start, end)
    tables = [("client", _("By client"), report.by_client), ("staff", _("By staff member"), report.by_staff),
              ("kind", _("By request kind"), report.by_kind)]
    if request.args.get("format") == "csv" and not problem:
        rows = []
        for by, _title, lines in tables:
            for line in lines:
                currencies = sorted(line.earned) or [""]
                rates = line.rates()
                rows += [[by, line.label, line.billable, line.not_billable, currency,
                          _amount(line.earned[currency], currency) if currency else "",
                          _amount(rates[currency], currency) if currency in rates else ""] for currency in currencies]
        return _csv("time", month, ["by", "name", "billable_minutes", "not_billable_minutes", "currency", "earned",
                                    "per_hour"], rows)
    # A request kind by its name in the reader's language (its slug when no policy names it).
    names = {kind.slug: kind.name for kind in db.session.scalars(select(RequestKind).order_by(RequestKind.id))}
    return _page("time", month, problem, tables=tables, kind_names=names)


@bp.get("/overage")
@admin_required
def overage():
    month, problem = _month()
    start, end = _span(month)
    found = activity.overage(db.session(), start, end)
    if request.args.get("format") == "csv" and not problem:
        return _csv("overage", month, ["currency", "what", "bills", "net", "vat", "gross"],
                    ([row.currency, what, amounts.count, _amount(amounts.net, row.currency),
                      _amount(amounts.vat, row.currency), _amount(amounts.gross, row.currency)]
                     for row in found for what, amounts in (("billed", row.billed), ("collected", row.collected))))
    return _page("overage", month, problem, found=found)


@bp.get("/ratings")
@admin_required
def ratings():
    month, problem = _month()
    months = [_add_months(month, n - HISTORY_MONTHS + 1) for n in range(HISTORY_MONTHS)]
    found = activity.ratings(db.session(), months)
    if request.args.get("format") == "csv" and not problem:
        return _csv("ratings", month, ["month", "ratings", "average"],
                    ([row.month.strftime("%Y-%m"), row.count, str(row.average) if row.average is not None else ""]
                     for row in found))
    chart = charts.columns(found, lambda row: float(row.average) if row.average is not None else None, maximum=5)
    return _page("ratings", month, problem, found=found, chart=chart)
