"""What a ticket says to its readers, wherever they read it: the labels of
its status and criticality, why it cost what it cost, the content of its
intervention report. Pages, mails and PDFs all take their words from here."""

from __future__ import annotations

from flask import Flask, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from billing.accounts.models import Account
from billing.desk import services as desk
from billing.desk.models import Ticket
from common.extensions import db
from common.i18n import translate, translate_plural

STATUS_LABELS = {
    "open": _l("Open"),
    "in_progress": _l("In progress"),
    "waiting": _l("Waiting for you"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
}
CRITICALITY_LABELS = {
    "low": _l("Low"),
    "normal": _l("Normal"),
    "high": _l("High"),
    "critical": _l("Critical"),
}


# The same status in staff's words: a ticket waits for the client, not for them.
STAFF_STATUS_LABELS = {**STATUS_LABELS, "waiting": _l("Waiting for the client")}


def ticket_status(status: str) -> str:
    labels = STAFF_STATUS_LABELS if current_user.is_authenticated and current_user.is_staff else STATUS_LABELS
    return str(labels.get(status, status))


def criticality_label(criticality: str) -> str:
    return str(CRITICALITY_LABELS.get(criticality, criticality))


def explanation(ticket: Ticket) -> str:
    """``27 min → 3 blocks of 10 min → 3 credits`` in the reader's language."""
    return desk.describe_cost(ticket, translate, translate_plural)


def report_context(ticket: Ticket) -> dict:
    entries = desk.time_entries(db.session(), ticket)
    return {
        "ticket": ticket, "entries": entries, "charge": desk.cost(ticket), "explanation": explanation(ticket),
        "billable_minutes": sum(e.minutes for e in entries if e.billable),
        "other_minutes": sum(e.minutes for e in entries if not e.billable),
        "taken": desk.tickets_taken_note(ticket),
    }


def init_app(app: Flask) -> None:
    app.add_template_global(ticket_status)
    app.add_template_global(criticality_label)


def already_opened(account: Account, form: FlaskForm, endpoint: str) -> Response | None:
    """The answer to a new-ticket form sent again (its one-time token keys the
    ticket): the ticket it opened the first time, at ``endpoint``. A token
    that keys another account's ticket goes to the form's token errors."""
    try:
        opened = desk.opened_under(db.session(), account, form.token.data)
    except desk.DeskError as error:
        form.token.errors = [*form.token.errors, _(error.message, **error.params)]
        return None
    if opened is None:
        return None
    flash(_("Ticket #%(number)d was already opened from this form: here it is.", number=opened.id), "info")
    return redirect(url_for(endpoint, ticket_id=opened.id))
