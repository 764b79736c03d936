"""The client portal's home: the dashboard of an account, its live
balance and its invoicing details; staff are sent to the back office's
home (portal/hub.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import bindparam, func, null, select, union_all

from billing import clock
from billing.accounts import invoicing as billing_accounts
from billing.accounts.models import Account
from billing.catalogue.models import Policy
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Operation, Overage
from billing.notifications import alerts
from billing.orders import services as orders
from billing.subscriptions import services as subscriptions
from common.extensions import db
from common.identity.access import INVALID, owner_required
from common.identity.forms import InvoicingForm

bp = Blueprint("portal", __name__, url_prefix="/portal")

# A lot expiring within this many days is listed under "expires soon".
EXPIRES_SOON_DAYS = 30
RECENT_CONSUMPTION = 8



@dataclass(frozen=True)
class OverageRequest:
    """An overage request awaiting the owner's answer, as the dashboard lists it."""

    id: int
    ticket_id: int
    subject: str
    units: int
    price: int | None
    currency: str | None


@dataclass
class BalanceLine:
    """One balance of the account as the dashboard shows it."""

    policy: Policy
    unit: str
    units: int          # what the account holds (every lot)
    mine: int           # what the current user's tickets may draw on
    debt: int
    requests: list[OverageRequest]   # units asked for beyond the balance, awaiting the owner
    threshold: int
    next_expiry: datetime | None
    lots: list[Lot]

    @property
    def net(self) -> int:
        return self.units - self.debt

    @property
    def pending(self) -> int:
        return sum(r.units for r in self.requests)

    @property
    def low(self) -> bool:
        return self.threshold > 0 and self.net < self.threshold

    @property
    def minutes(self) -> int | None:
        """The work the balance still pays for, in minutes (a ticket: its maximum)."""
        return max(self.net, 0) * self.policy.unit_minutes


def _known(session, account_id: int) -> tuple[set[tuple[int, str]], dict[tuple[int, str], list[OverageRequest]]]:
    """In one query: every balance the account has held a lot of (used up or
    expired ones too: ledger.balances() only sees lots that still hold
    units), and its overage requests awaiting the owner, by balance."""
    held = (select(Lot.policy_id, Lot.unit, null(), null(), null(), null(), null(), null())
            .where(Lot.account_id == account_id).group_by(Lot.policy_id, Lot.unit))
    asked = (select(Ticket.policy_id, Ticket.unit, Overage.id, Overage.ticket_id, Ticket.subject,
                    Overage.units - Overage.settled, Overage.price, Overage.currency)
             .join(Overage.ticket).where(Overage.account_id == account_id, Overage.status == "pending"))
    keys: set[tuple[int, str]] = set()
    requests: dict[tuple[int, str], list[OverageRequest]] = {}
    for policy_id, unit, overage_id, ticket_id, subject, units, price, currency in session.execute(
            union_all(held, asked)):
        keys.add((policy_id, unit))
        if overage_id is not None:
            requests.setdefault((policy_id, unit), []).append(
                OverageRequest(overage_id, ticket_id, subject, units, price, currency))
    for found in requests.values():
        found.sort(key=lambda r: r.id)
    return keys, requests


def dashboard(account: Account, user, now: datetime) -> dict:
    """Everything the live balance shows: balances, their lots, what expires
    soon, the low-balance warnings, the requests awaiting an answer and the
    recent consumption. A balance used up (or owing, or asked beyond) stays,
    at 0 or below: that is when its warning matters most."""
    session = db.session()
    lots = desk.lots_of(session, account, now=now)
    mine = {(b.policy_id, b.unit): b.units for b in ledger.balances(session, account.id, now=now, user_id=user.id)}
    keys, requests = _known(session, account.id)
    found = ledger.balances(session, account.id, now=now)
    seen = {(b.policy_id, b.unit) for b in found}
    found += [ledger.Balance(policy_id, unit, 0, 0, None) for policy_id, unit in sorted(keys - seen)]
    policies = {p.id: p for p in session.scalars(select(Policy).where(Policy.id.in_({b.policy_id for b in found})))}
    lines = [
        BalanceLine(policy=policies[b.policy_id], unit=b.unit, units=b.units, mine=mine.get((b.policy_id, b.unit), 0),
                    debt=b.debt, requests=requests.get((b.policy_id, b.unit), []),
                    threshold=alerts.threshold_for(session, account.id, b.policy_id, b.unit),
                    next_expiry=b.next_expiry,
                    lots=[lot for lot in lots if (lot.policy_id, lot.unit) == (b.policy_id, b.unit)])
        for b in found
    ]
    soon = now + timedelta(days=EXPIRES_SOON_DAYS)
    recent = session.execute(
        select(Entry.quantity, Entry.effective_at, Entry.lot_id, Ticket)
        .join(Ticket, Entry.ticket_id == Ticket.id)
        .where(Entry.account_id == account.id, Entry.kind == "consume")
        .order_by(Entry.id.desc()).limit(RECENT_CONSUMPTION)
    ).all()
    return {
        "account": account,
        "lines": lines,
        "expiring": [lot for lot in lots if lot.expires_at is not None and lot.expires_at <= soon],
        "recent": recent,
        "now": now,
        "subscription": subscriptions.current(session, account.id, now=now),
    }


# ------------------------------------------------------------------ views

@bp.get("/")
@login_required
def home():
    if current_user.is_staff:
        return redirect(url_for("staff.hub"))
    account = current_user.account
    now = clock.now()
    country = get_locale().territories.get(account.country, account.country)
    recent_tickets = desk.tickets(db.session(), account.id, limit=5)
    response = Response(render_template(
        "portal/home.html", country=country, tickets=recent_tickets, tag=balance_tag(account.id, now),
        poll_seconds=current_app.config["BALANCE_POLL_SECONDS"], **dashboard(account, current_user, now)))
    response.headers["Cache-Control"] = "no-cache, private"
    return response


# Built once: constructing the statement cost as much as running it. The
# overages are in it because answering a request writes no ledger operation.
_OVERAGES = (
    select(func.max(Overage.id).label("last"), func.count(Overage.decided_at).label("decided"))
    .where(Overage.account_id == bindparam("account_id"))
    .subquery()
)
_TAG_QUERY = select(
    select(func.max(Operation.id)).where(Operation.account_id == bindparam("account_id")).scalar_subquery(),
    select(func.min(Lot.expires_at))
    .where(Lot.account_id == bindparam("account_id"), Lot.remaining > 0,
           Lot.expires_at > bindparam("now", type_=Lot.expires_at.type)).scalar_subquery(),
    _OVERAGES.c.last,
    _OVERAGES.c.decided,
).select_from(_OVERAGES)


def balance_tag(account_id: int, now: datetime) -> str:
    """What the balance looks like, in one small query: the account's last
    ledger operation, the next expiry still ahead (once it passes, the
    balance changed without any write), and its last overage request with
    how many were answered (an owner's answer is no ledger operation), with
    who asks and in which language. The same tag, the same fragment."""
    last, expiry, overage, decided = db.session.execute(_TAG_QUERY, {"account_id": account_id, "now": now}).one()
    state = (f"{account_id}:{current_user.id}:{current_user.language}:{get_locale()}:{last}:{expiry}"
             f":{overage}:{decided}")
    return hashlib.blake2b(state.encode(), digest_size=12).hexdigest()


@bp.get("/balance")
def balance():
    """The live balance: the hottest path of the portal. Every open
    dashboard asks every few seconds with the tag it shows; while nothing
    moved the answer is an empty 304, decided before any template renders."""
    if not current_user.is_authenticated:
        # A removed user or an expired session: htmx takes the whole page to the login.
        response = Response(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login", next=url_for("portal.home"))
        return response
    if current_user.is_staff:
        abort(404)
    now = clock.now()
    tag = balance_tag(current_user.account_id, now)
    if tag in request.if_none_match:
        response = Response(status=304)
    else:
        response = Response(render_template("portal/_balance.html", tag=tag,
                                            poll_seconds=current_app.config["BALANCE_POLL_SECONDS"],
                                            **dashboard(current_user.account, current_user, now)))
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-cache, private"
    return response


@bp.get("/buy")
@login_required
def buy():
    """Every pack on sale, each linking to checkout for this account; the
    providers whose credit the account already holds first."""
    if current_user.is_staff:
        abort(404)
    from itertools import groupby

    from billing.catalogue.offers import active_packs, offer

    held = set(db.session.scalars(
        select(Policy.catalogue_id).join(Lot, Lot.policy_id == Policy.id)
        .where(Lot.account_id == current_user.account_id)
    ))
    sections = [(packs[0].catalogue, packs) for packs in
                (list(group) for _id, group in groupby(active_packs(db.session()), lambda p: p.catalogue_id))]
    sections.sort(key=lambda section: section[0].id not in held)
    taken = orders.trials_taken(db.session(), current_user.account_id, current_user.email)
    # What each pack would give this buyer: an offer in their language, and
    # whether it would be their first purchase on its balance (a registration
    # pack expires, later top-ups may not).
    locale = str(get_locale())
    offers = {pack.id: offer(pack, locale) for _catalogue, packs in sections for pack in packs}
    first = {pack.id: orders.is_first_purchase(db.session(), current_user.account, pack)
             for _catalogue, packs in sections for pack in packs if pack.registration_first}
    return render_template("portal/buy.html", sections=sections, held=held, taken=taken, offers=offers,
                           first=first)


def _invoicing_page(form: InvoicingForm | None = None, status: int = 200):
    account = current_user.account
    if form is None:
        form = InvoicingForm(formdata=None, address=account.address, vat_id=account.vat_id)
    return render_template("portal/invoicing.html", account=account, form=form,
                           country=get_locale().territories.get(account.country, account.country)), status


@bp.get("/invoicing")
@login_required
def invoicing():
    """What the account's invoices say of it: everyone in the account reads
    it, its owners change it."""
    if current_user.is_staff:
        abort(404)
    return _invoicing_page()


@bp.post("/invoicing")
@owner_required
def save_invoicing():
    form = InvoicingForm()
    if not form.validate_on_submit():
        return _invoicing_page(form, INVALID)
    try:
        billing_accounts.set_invoicing_details(db.session(), current_user.account, address=form.address.data,
                                               vat_id=form.vat_id.data)
    except billing_accounts.InvoicingError as error:
        form[error.field].errors = [*form[error.field].errors, _(error.message, **error.params)]
        return _invoicing_page(form, INVALID)
    flash(_("Your invoicing details are saved: the next invoices will carry them."), "success")
    return redirect(url_for("portal.invoicing"))
