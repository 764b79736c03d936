"""The provider's clients, for staff: the list of accounts (search, sort,
pages) and one account's page, which other areas of the back office extend
with their own sections and buttons (adjust credit, open a ticket, quotes).

Who may see them is decided here, once: any active staff member
(``staff_required``); for a client the pages do not exist to ask for."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from billing import clock
from billing.accounts import directory, invoicing
from billing.accounts.models import Account
from billing.ledger.statement import statement
from billing.quotes import services as quotes
from common.extensions import db
from common.fragments import page_or_fragment
from common.identity.access import INVALID, staff_required
from common.identity.forms import InvoicingForm
from common.safety import parse_id

bp = Blueprint("clients", __name__, url_prefix="/staff/clients")

ROLE_LABELS = {"owner": _l("Owner"), "member": _l("Member")}
SORT_LABELS = {
    "name": _l("Name"),
    "balance": _l("Largest balance"),
    "debt": _l("Largest debt"),
    "pending": _l("Most requests awaiting approval"),
    "expiry": _l("Nearest expiry"),
    "activity": _l("Latest activity"),
}


def get_account(account_id: int) -> Account:
    """The account a staff member asked for; 404 when there is none."""
    account = db.session.get(Account, account_id)
    if account is None:
        abort(404)
    return account


def countries_named(query: str) -> set[str]:
    """The ISO codes of the countries whose name, in the reader's language,
    contains ``query`` ("alle" finds Germany in French: Allemagne)."""
    query = query.strip().casefold()
    if len(query) < 3:
        return set()
    return {code for code, name in get_locale().territories.items()
            if len(code) == 2 and code.isalpha() and query in name.casefold()}


@bp.get("")
@staff_required
def index():
    """Every account, searched and sorted; a real GET form that htmx sends
    as one types, swapping the results only."""
    query = " ".join(request.args.get("q", "").split())[:directory.MAX_QUERY]
    order = request.args.get("order")
    found = directory.clients(
        db.session(), now=clock.now(), query=query, countries=countries_named(query),
        sort=request.args.get("sort", "name"), descending={"asc": False, "desc": True}.get(order or ""),
        page=parse_id(request.args.get("page")) or 1)
    country_names = get_locale().territories
    return page_or_fragment("clients/index.html", "clients/_results.html", found=found, query=query,
                            country_names=country_names, sort_labels=SORT_LABELS)


def _account_page(account: Account, form: InvoicingForm | None = None, status: int = 200):
    now = clock.now()
    start, end = now.date().replace(day=1), now.date()
    if form is None:
        form = InvoicingForm(formdata=None, address=account.address, vat_id=account.vat_id)
    return render_template(
        "clients/account.html", account=account, form=form,
        country=get_locale().territories.get(account.country, account.country),
        seen=directory.overview(db.session(), account, now=now), now=now, start=start, end=end,
        report=statement(db.session(), account, start, end, now=now), roles=ROLE_LABELS,
        quotes=quotes.of_account(db.session(), account.id)), status


@bp.get("/<int:account_id>")
@staff_required
def account(account_id: int):
    """Everything about one client for staff: people, balances and lots,
    orders, invoices, tickets, this month's statement and the invoicing
    details, which staff may correct."""
    return _account_page(get_account(account_id))


@bp.post("/<int:account_id>/invoicing")
@staff_required
def save_invoicing(account_id: int):
    """The client's invoicing details, corrected by staff under the rules of
    the client's own form."""
    found = get_account(account_id)
    form = InvoicingForm()
    if not form.validate_on_submit():
        return _account_page(found, form, INVALID)
    try:
        invoicing.set_invoicing_details(db.session(), found, address=form.address.data, vat_id=form.vat_id.data,
                                        by=current_user._get_current_object())
    except invoicing.InvoicingError as error:
        form[error.field].errors = [*form[error.field].errors, _(error.message, **error.params)]
        return _account_page(found, form, INVALID)
    flash(_("The invoicing details of %(name)s are saved: its next invoices will carry them.", name=found.name),
          "success")
    return redirect(url_for("clients.account", account_id=found.id, _anchor="invoicing"))
