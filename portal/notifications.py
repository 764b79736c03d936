"""Mail preferences and the staff view of the outbox.

Every signed-in person chooses at /portal/notifications which messages they
receive (an owner cannot switch off the money topics); staff see at
/portal/staff/mail every message queued, sent or failed, with its error, and send
one again.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from billing import clock
from billing.notifications import outbox
from common.extensions import db
from common.identity.access import staff_required
from common.mail import delivery

bp = Blueprint("notifications", __name__)

# What each topic is, in the words of the preferences page.
TOPIC_LABELS = {
    "orders": (_l("Orders and invoices"),
               _l("Your orders, how to pay them, reminders, payments received with the invoice, the free trial.")),
    "low_balance": (_l("Low balance"), _l("When a balance goes below its warning level.")),
    "expiring": (_l("Credit about to expire"), _l("Before a pack's units expire.")),
    "overage": (_l("Work beyond the balance"), _l("When a ticket needs more than the balance and awaits an answer.")),
    "ticket_opened": (_l("Ticket received"), _l("A confirmation when you open a ticket.")),
    "replies": (_l("Replies from support"), _l("Each answer support writes on your tickets.")),
    "resolved": (_l("Ticket resolved"), _l("The intervention report, what it cost and the balance left.")),
    "new_tickets": (_l("New tickets"), _l("Each ticket a client opens.")),
    "quote_requests": (_l("Quote requests"), _l("Each quote a visitor or a client asks for, to price and send.")),
}
KIND_LABELS = {
    "verify_email": _l("Email address to confirm"), "reset_password": _l("Password reset"),
    "invitation": _l("Invitation to a pool"), "order_received": _l("Order received"),
    "payment_confirmed": _l("Payment received, with the invoice"),
    "payment_partial": _l("Part of a payment received"), "order_reminder": _l("Payment reminder"),
    "order_cancelled": _l("Order cancelled"), "trial_started": _l("Free trial started"),
    "low_balance": _l("Low balance"), "expiring": _l("Credit about to expire"),
    "overage_request": _l("Work beyond the balance"), "ticket_opened": _l("Ticket received"),
    "ticket_opened_staff": _l("New ticket"), "staff_reply": _l("Reply from support"),
    "ticket_resolved": _l("Ticket resolved, with the report"), "quote_sent": _l("Quote sent"),
    "quote_requested_staff": _l("Quote request"),
}
STATUS_LABELS = {"pending": _l("waiting"), "sent": _l("sent"), "failed": _l("failed")}



@bp.route("/portal/notifications", methods=["GET", "POST"])
@login_required
def preferences():
    user = current_user._get_current_object()
    if request.method == "POST":
        wanted = {topic.slug: request.form.get(topic.slug) == "on" for topic in outbox.topics_for(user)}
        outbox.set_preferences(db.session(), user, wanted)
        flash(_("Your email preferences are saved."), "success")
        return redirect(url_for("notifications.preferences"))
    rows = [(topic, *TOPIC_LABELS[topic.slug], outbox.locked_on(topic, user))
            for topic in outbox.topics_for(user)]
    return render_template("notifications/preferences.html", rows=rows,
                           chosen=outbox.preferences(db.session(), user))


@bp.get("/portal/staff/mail")
@staff_required
def staff():
    status = request.args.get("status") or None
    if status not in (None, *outbox.STATUSES):
        abort(400)
    return render_template("notifications/outbox.html", messages=outbox.listing(db.session(), status=status),
                           counts=outbox.counts(db.session()), status=status, labels=STATUS_LABELS, kinds=KIND_LABELS,
                           max_attempts=outbox.MAX_ATTEMPTS)


@bp.post("/portal/staff/mail/<int:message_id>/resend")
@staff_required
def resend(message_id: int):
    message = db.session.get(outbox.OutboxMessage, message_id)
    if message is None:
        abort(404)
    try:
        message = outbox.resend(db.session(), message, by=current_user._get_current_object(), now=clock.now())
    except outbox.OutboxError as error:
        flash(_("This message cannot be sent again now: %(reason)s", reason=str(error)), "error")
        return redirect(url_for("notifications.staff", status=request.args.get("status")))
    if delivery.deliver_now([message.key]):
        flash(_("Message %(number)d sent again to %(email)s.", number=message.id, email=message.email), "success")
    else:
        flash(_("Message %(number)d could not be sent now: it stays queued and is tried again.",
                number=message.id), "error")
    return redirect(url_for("notifications.staff", status=request.args.get("status")))
