"""The staff desk: the queue of every account's open tickets, a ticket as
staff work it (thread with internal notes, replies, status, assignment,
time logged with a live preview of its charge, the overage flow of the
policy, resolution with a note for the report).

Staff only, everywhere: ``staff_required`` sends an anonymous visitor to the
login page and answers 403 to a client. Tickets are loaded by one loader,
``get_ticket``, which aborts with 404. The services (billing.desk,
billing.ledger) own every transaction; the views only turn their errors
into messages next to the field.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, tzinfo
from typing import TypedDict

from babel.dates import format_skeleton
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    request,
    url_for,
)
from flask_babel import format_timedelta, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from billing import clock
from billing.accounts.models import Account, User
from billing.desk import kinds
from billing.desk import services as desk
from billing.desk.models import CRITICALITIES, Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Overage
from billing.ledger.rules import explain
from billing.models import localized
from billing.service import levels as service_levels
from common.extensions import db
from common.fragments import page_or_fragment, wants_fragment
from common.i18n import quantity, translate, translate_plural
from common.identity.access import INVALID, staff_required
from common.mail import delivery
from common.safety import id_arg, parse_id, safe_next

bp = Blueprint("desk", __name__, url_prefix="/desk")

# Who the queue shows: everybody's tickets, mine, or nobody's.
WHO = ("", "mine", "unassigned")
# Which tickets by their first-response target, and in which order.
DUE = ("", "overdue")
SORTS = ("", "due")
# The queue's status filter: the work, or what was done (with its rating).
STATUSES = (*desk.ACTIVE_STATUSES, *desk.DONE_STATUSES)
# An idempotency key as the form carries it: what secrets.token_urlsafe makes.
KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
# The kind change's one-time token, as the confirmation form carries it.
TOKEN = re.compile(r"[0-9a-f]{32}")


class TimeForm(TypedDict, total=False):
    """The time form as typed, shown again with its preview or its errors."""

    minutes: str
    billable: bool
    note: str
    key: str

@bp.before_request
@staff_required
def _staff_only() -> None:
    """Every view of the desk: staff only (login for anonymous, 403 for clients)."""



def _me() -> User:
    return current_user._get_current_object()


def get_ticket(ticket_id: int) -> Ticket:
    """The ticket (staff see every account's); 404 when there is none."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    return ticket


def _staff_members() -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.is_staff.is_(True), User.removed_at.is_(None)).order_by(User.name)))


# ------------------------------------------------------------------ queue

@bp.get("/")
def queue():
    """Open tickets of every account, most critical then oldest (or the
    soonest due first), with each one's first-response due time counted in
    opening hours and whether it is late; resolved and closed ones show
    their rating. The filters are a real GET form; htmx swaps just the list."""
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    who = request.args.get("who", "")
    who = who if who in WHO else ""
    due = request.args.get("due", "")
    due = due if due in DUE else ""
    sort = request.args.get("sort", "")
    sort = sort if sort in SORTS else ""
    account_id = id_arg("account")
    now = clock.now()
    found = desk.queue(db.session(), statuses=(status,) if status else desk.ACTIVE_STATUSES, account_id=account_id,
                       assigned_to_id=current_user.id if who == "mine" else None, unassigned=who == "unassigned",
                       recent=status in desk.DONE_STATUSES)
    sla = service_levels.levels(db.session())
    dues = {ticket.id: sla.state(ticket, now) for ticket in found}
    if due == "overdue":
        found = [ticket for ticket in found if dues[ticket.id].late]
    if sort == "due":
        found.sort(key=lambda t: (dues[t.id].answered, dues[t.id].due or now.max.replace(tzinfo=now.tzinfo)))
    accounts = db.session.scalars(
        select(Account).where(Account.id.in_(select(Ticket.account_id).where(Ticket.status.in_(desk.ACTIVE_STATUSES))))
        .order_by(Account.name)).all()
    return page_or_fragment(
        "desk/queue.html", "desk/_queue_list.html", tickets=found, status=status, who=who, due=due, sort=sort,
        account_id=account_id, accounts=accounts, statuses=STATUSES, staff=_staff_members(), now=now, dues=dues,
        zone=sla.schedule.zone, back=request.full_path if request.query_string else request.path)


@bp.app_template_filter("elapsed")
def elapsed(delta) -> str:
    """``3 hours``: a wait or a response time, in the reader's language."""
    return format_timedelta(delta, granularity="minute", threshold=1.5)


@bp.app_template_filter("local_moment")
def local_moment(moment: datetime, zone: tzinfo) -> str:
    """``Mon, Dec 7 14:00``: a due time on the provider's clock, in the reader's language."""
    local, locale = moment.astimezone(zone), get_locale()
    return f"{format_skeleton('MMMEd', local, locale=locale)} {format_skeleton('Hm', local, locale=locale)}"


@bp.post("/tickets/<int:ticket_id>/assign")
def assign(ticket_id: int):
    """Give the ticket to me, to another staff member, or to nobody. From a
    queue row htmx swaps that row; without JavaScript, back to where it came from."""
    ticket = get_ticket(ticket_id)
    to = request.form.get("to", "")
    staff: User | None
    if to == "me":
        staff = _me()
    elif to:
        staff = db.session.get(User, parse_id(to)) if parse_id(to) is not None else None
        if staff is None or not staff.is_staff or staff.removed_at is not None:
            abort(400)
    else:
        staff = None
    desk.assign(db.session(), ticket, staff, by=_me(), now=clock.now())
    if wants_fragment() and request.form.get("row"):
        sla = service_levels.levels(db.session())
        return page_or_fragment("desk/_row.html", None, ticket=ticket, staff=_staff_members(), now=clock.now(),
                                dues={ticket.id: sla.state(ticket, clock.now())}, zone=sla.schedule.zone,
                                back=request.form.get("next", ""))
    flash(_("#%(number)d is assigned to %(name)s.", number=ticket.id, name=staff.name) if staff
          else _("#%(number)d is assigned to nobody.", number=ticket.id), "success")
    return redirect(safe_next(request.form.get("next"), url_for("desk.show", ticket_id=ticket.id)))


# ------------------------------------------------------------------ ticket

def _minutes(value: str | None) -> int | None:
    value = (value or "").strip()
    return parse_id(value) if len(value) <= 5 else None


def preview_text(ticket: Ticket, minutes: int | None, billable: bool) -> dict | None:
    """What logging ``minutes`` more would charge, in words, and what the
    balance says about it; None before a number of minutes is typed."""
    if not minutes:
        return None
    found = desk.preview(ticket, minutes, billable)
    added = _("+%(num)d min", num=minutes)
    if not billable:
        return {"text": " → ".join([added, _("not charged (time not billable)")]), "delta": 0}
    if not found.after.billable:
        text = " → ".join([added, _("total %(num)d min", num=found.after.minutes),
                           _("not charged: this kind of request is not deducted")])
        return {"text": text, "delta": 0}
    result = {"text": desk.describe_preview(found, translate, translate_plural), "delta": found.delta}
    if ticket.unit == "ticket" and found.after.units > max(found.before.units, 1):
        # Seed 004: one ticket is 30 min of work at most; beyond, the subject takes another.
        result["tickets"] = _(
            "The work passes %(minutes)d min: this subject will use %(count)s in all.",
            minutes=ticket.policy.unit_minutes * max(found.before.units, 1),
            count=quantity(found.after.units, "ticket"))
    if found.delta > 0:
        available = _balance(ticket).units
        if found.delta > available:
            result["short"] = found.delta - available
            result["mode"] = ticket.policy.overage_mode
    return result


def _balance(ticket: Ticket) -> ledger.Balance:
    """The balance the ticket draws from, as far as its opener's lots go."""
    return ledger.balance(db.session(), ticket.account_id, ticket.policy_id, ticket.unit, now=clock.now(),
                          user_id=ticket.opened_by_id)


def _ticket_context(ticket: Ticket, **extra) -> dict:
    entries = desk.time_entries(db.session(), ticket)
    form = {"minutes": "", "billable": True, "note": "", "key": secrets.token_urlsafe(16)}
    form.update(extra.pop("time_form", {}))
    sla = service_levels.levels(db.session())
    context = {
        "ticket": ticket,
        "due_state": sla.state(ticket, clock.now()),
        "zone": sla.schedule.zone,
        "messages": desk.thread(db.session(), ticket, internal=True),
        "entries": entries,
        "billable_minutes": sum(e.minutes for e in entries if e.billable),
        "other_minutes": sum(e.minutes for e in entries if not e.billable),
        "charge": desk.cost(ticket),
        "explanation": desk.describe_cost(ticket, translate, translate_plural),
        "taken": desk.tickets_taken_note(ticket),
        "balance": _balance(ticket),
        "overages": [o for o in ticket.overages if o.outstanding or o.status in ("approved", "declined")],
        "staff": _staff_members(),
        "criticalities": CRITICALITIES,
        "statuses": desk.ACTIVE_STATUSES,
        "time_form": form,
        "preview": preview_text(ticket, _minutes(str(form["minutes"])), bool(form["billable"])),
        "errors": {},
        "reply_body": "",
        "limits": {"types": sorted(current_app.config["ATTACHMENT_TYPES"])},
        "kind_change": kind_change(ticket),
        "opened_for": desk.opened_by_staff(db.session(), ticket),
    }
    context.update(extra)
    return context


def _page(ticket: Ticket, status: int = 200, **extra):
    return page_or_fragment("desk/ticket.html", None, status, **_ticket_context(ticket, **extra))


@bp.get("/tickets/<int:ticket_id>")
def show(ticket_id: int):
    return _page(get_ticket(ticket_id))


@bp.get("/tickets/<int:ticket_id>/preview")
def preview(ticket_id: int):
    """The charge the typed minutes would make. htmx asks on every pause in
    typing and swaps the preview; without JavaScript this is the ticket page
    with the form as typed and the preview under it."""
    ticket = get_ticket(ticket_id)
    typed: TimeForm = {"minutes": request.args.get("minutes", ""), "billable": request.args.get("billable") == "1",
                       "note": request.args.get("note", "")}
    key = request.args.get("key", "")
    if KEY.fullmatch(key):
        typed["key"] = key
    minutes = _minutes(typed["minutes"])
    if wants_fragment():
        return page_or_fragment("desk/_preview.html", None, ticket=ticket,
                                preview=preview_text(ticket, minutes, typed["billable"]))
    return _page(ticket, time_form=typed)


@bp.post("/tickets/<int:ticket_id>/time")
def log_time(ticket_id: int):
    """Save the time and its charge in one transaction (billing.desk.log_time),
    once per form rendered (its hidden key). The policy decides beyond the
    balance: ``block`` writes nothing and says what is missing, ``ask``
    records a request and mails the owners, ``allow`` records a debt."""
    ticket = get_ticket(ticket_id)
    typed: TimeForm = {"minutes": request.form.get("minutes", ""), "billable": request.form.get("billable") == "1",
                       "note": request.form.get("note", ""), "key": request.form.get("key", "")}
    if request.form.get("action") == "preview":
        if not KEY.fullmatch(typed["key"]):
            typed.pop("key")
        return _page(ticket, time_form=typed)
    minutes = _minutes(typed["minutes"])
    errors: dict[str, str] = {}
    if not KEY.fullmatch(typed["key"]):
        # A form we did not render: a new key, and staff send it again.
        typed.pop("key")
        errors["minutes"] = _("The form was out of date: check the figures and save again.")
    elif minutes is None or not 1 <= minutes <= desk.MAX_ENTRY_MINUTES:
        errors["minutes"] = _("Enter whole minutes, from 1 to %(max)d.", max=desk.MAX_ENTRY_MINUTES)
    if errors or minutes is None:
        return _page(ticket, INVALID, time_form=typed, errors=errors)
    pending_before = _outstanding(ticket, "pending")
    debt_before = _outstanding(ticket, "debt")
    try:
        entry = desk.log_time(db.session(), ticket, _me(), minutes, typed["billable"], typed["note"],
                              f"desk:{typed['key']}", clock.now())
    except ledger.InsufficientBalance as error:
        db.session.refresh(ticket)
        errors["minutes"] = _(
            "Not saved: %(missing)s missing. The balance holds %(available)s and this policy does not go beyond it: "
            "the client buys a pack first.",
            missing=quantity(error.missing, error.unit), available=quantity(error.available, error.unit))
        typed.pop("key")  # nothing was written: the next try is a new entry
        return _page(ticket, INVALID, time_form=typed, errors=errors)
    except desk.DeskError as error:
        db.session.refresh(ticket)
        errors[error.field if error.field in ("minutes", "note") else "minutes"] = _(error.message, **error.params)
        return _page(ticket, INVALID, time_form=typed, errors=errors)
    except ledger.LedgerError as error:
        db.session.refresh(ticket)
        typed.pop("key")
        errors["minutes"] = _(error.message, **error.params)
        return _page(ticket, INVALID, time_form=typed, errors=errors)
    db.session.refresh(ticket)
    flash(_("%(minutes)d min logged on #%(number)d. The ticket now costs %(units)s.", minutes=entry.minutes,
            number=ticket.id, units=quantity(ticket.units_charged, ticket.unit)), "success")
    _beyond(ticket, pending_before, debt_before, f"time:{entry.key}:overage")
    return redirect(url_for("desk.show", ticket_id=ticket.id) + "#time")


def _beyond(ticket: Ticket, pending_before: int, debt_before: int, event: str) -> None:
    """Tell staff what a charge left beyond the balance: a request the
    owners were asked to approve (by the mail of ``event``), or a debt."""
    asked = _outstanding(ticket, "pending") - pending_before
    if asked > 0:
        told = len(delivery.queued(event))
        flash(_("%(amount)s beyond the balance: the account's owners are asked to approve (%(count)d told by email).",
                amount=quantity(asked, ticket.unit), count=told), "info")
    owed = _outstanding(ticket, "debt") - debt_before
    if owed > 0:
        flash(_("Warning: %(amount)s beyond the balance recorded as debt; the next pack pays it first.",
                amount=quantity(owed, ticket.unit)), "error")


def _outstanding(ticket: Ticket, status: str) -> int:
    return sum(o.outstanding for o in db.session.scalars(
        select(Overage).where(Overage.ticket_id == ticket.id, Overage.status == status)
        .execution_options(populate_existing=True)))


@bp.post("/tickets/<int:ticket_id>/messages")
def reply(ticket_id: int):
    """A public reply or an internal note (never shown to the client)."""
    ticket = get_ticket(ticket_id)
    body = request.form.get("body", "")
    internal = request.form.get("internal") == "1"
    try:
        desk.post_message(db.session(), ticket, _me(), body, now=clock.now(), internal=internal,
                          files=_uploads(), rules=_rules())
    except desk.DeskError as error:
        return _page(ticket, INVALID, errors={"body": _(error.message, **error.params)}, reply_body=body)
    flash(_("Internal note added.") if internal else _("Reply sent to the client."), "success")
    return redirect(url_for("desk.show", ticket_id=ticket.id) + "#thread-end")


def _rules() -> desk.AttachmentRules:
    return desk.AttachmentRules.from_settings(current_app.config)


def _uploads() -> list[desk.Upload]:
    limit = current_app.config["ATTACHMENT_MAX_BYTES"] + 1
    return [desk.Upload(f.filename or "", f.stream.read(limit), f.mimetype or "")
            for f in request.files.getlist("files") if f and f.filename]


@bp.post("/tickets/<int:ticket_id>/status")
def set_status(ticket_id: int):
    ticket = get_ticket(ticket_id)
    if not (request.form.get("criticality") or request.form.get("status")):
        # A form sent with neither field changed nothing: saying "saved" would lie.
        flash(_("Choose a status from the list."), "error")
        return redirect(url_for("desk.show", ticket_id=ticket.id))
    try:
        if request.form.get("criticality"):
            desk.set_criticality(db.session(), ticket, request.form["criticality"], by=_me(), now=clock.now())
        if request.form.get("status"):
            desk.set_status(db.session(), ticket, request.form["status"], by=_me(), now=clock.now())
    except desk.DeskError as error:
        flash(_(error.message, **error.params), "error")
    else:
        flash(_("#%(number)d saved.", number=ticket.id), "success")
    return redirect(url_for("desk.show", ticket_id=ticket.id))


@bp.post("/tickets/<int:ticket_id>/resolve")
def resolve(ticket_id: int):
    """Resolved, with the note printed on the intervention report."""
    ticket = get_ticket(ticket_id)
    try:
        desk.resolve(db.session(), ticket, by=_me(), note=request.form.get("staff_note", ""), now=clock.now())
    except desk.DeskError as error:
        return _page(ticket, INVALID, errors={"staff_note": _(error.message, **error.params)})
    flash(_("#%(number)d is resolved: its intervention report is ready for the client.", number=ticket.id), "success")
    return redirect(url_for("desk.show", ticket_id=ticket.id))


# ------------------------------------------------------------------ request kind

def _kind_name(ticket: Ticket, slug: str) -> str:
    found = next((k for k in ticket.policy.kinds if k.slug == slug), None)
    return localized(found.name, str(get_locale())) if found is not None else slug


def kind_change(ticket: Ticket, chosen: str = "", error: str | None = None, token: str | None = None) -> dict:
    """The request kind form: the kinds of the ticket's policy and, once
    another is chosen, the preview of the charge under its rule (before →
    after) with the confirmation's one-time token."""
    current = kinds.current_kind(ticket)
    found: dict = {"current": current, "current_name": _kind_name(ticket, current) if current else "",
                   "choices": [(k.slug, localized(k.name, str(get_locale()))) for k in ticket.policy.kinds],
                   "chosen": chosen or current, "preview": None, "error": error}
    if chosen and chosen != current and error is None:
        try:
            preview = kinds.preview_kind(ticket, chosen)
        except desk.DeskError as refused:
            found["error"] = _(refused.message, **refused.params)
            return found
        text = {"before": explain(preview.before, translate, translate_plural),
                "after": explain(preview.after, translate, translate_plural),
                "before_name": found["current_name"], "after_name": _kind_name(ticket, chosen),
                "delta": preview.delta, "units_before": preview.before.units, "units_after": preview.after.units,
                "token": token if token and TOKEN.fullmatch(token) else secrets.token_hex(16)}
        if preview.delta > 0:
            available = _balance(ticket).units
            if preview.delta > available:
                text["short"] = preview.delta - available
                text["mode"] = ticket.policy.overage_mode
        found["preview"] = text
    return found


@bp.get("/tickets/<int:ticket_id>/kind")
def kind_preview(ticket_id: int):
    """The charge under the kind chosen, before → after, and the button that
    confirms it. htmx swaps #kind-change; without JavaScript, the ticket
    page with the preview in place."""
    ticket = get_ticket(ticket_id)
    chosen = request.args.get("kind", "")[:40]
    change = kind_change(ticket, chosen)
    if wants_fragment():
        return page_or_fragment("desk/_kind.html", None, ticket=ticket, kind_change=change)
    return _page(ticket, kind_change=change)


@bp.post("/tickets/<int:ticket_id>/kind")
def change_kind(ticket_id: int):
    """Confirm the kind previewed: the charge follows the new kind's rule
    at once (billing.desk.kinds), once per preview shown (its token)."""
    ticket = get_ticket(ticket_id)
    chosen = request.form.get("kind", "")[:40]
    token = request.form.get("token", "")
    if not TOKEN.fullmatch(token):
        change = kind_change(ticket, chosen)
        change["error"] = _("This form has expired: check it and send it again.")
        return _page(ticket, INVALID, kind_change=change)
    before = ticket.units_charged
    pending_before, debt_before = _outstanding(ticket, "pending"), _outstanding(ticket, "debt")
    try:
        done = kinds.change_kind(db.session(), ticket, chosen, by=_me(), expected=request.form.get("expected", ""),
                                 key=f"{ticket.id}:{token}", now=clock.now())
    except ledger.InsufficientBalance as error:
        db.session.refresh(ticket)
        message = _("Not changed: %(missing)s missing. The balance holds %(available)s and this policy does not go "
                    "beyond it: the client buys a pack first.", missing=quantity(error.missing, error.unit),
                    available=quantity(error.available, error.unit))
        return _page(ticket, INVALID, kind_change=kind_change(ticket, chosen, error=message))
    except (desk.DeskError, ledger.LedgerError) as error:
        db.session.refresh(ticket)
        message = _(error.message, **error.params)
        return _page(ticket, INVALID, kind_change=kind_change(ticket, chosen, error=message))
    if done.duplicate:
        flash(_("This change was already made: nothing changed."), "info")
    else:
        flash(_("#%(number)d is now %(kind)s: it costs %(after)s (was %(before)s).", number=ticket.id,
                kind=_kind_name(ticket, chosen), after=quantity(done.ticket.units_charged, ticket.unit),
                before=quantity(before, ticket.unit)), "success")
        _beyond(ticket, pending_before, debt_before, f"{kinds.KEY_PREFIX}{ticket.id}:{token}:overage")
    return redirect(url_for("desk.show", ticket_id=ticket.id) + "#kind-change")
