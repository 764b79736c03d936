"""Delivering the outbox (billing.notifications.outbox): each kind of message, how it is
written (subject, templates, attachments) from what the event recorded, and
the delivery itself.

Messages are written at delivery time, in the recipient's language, from
the ids and figures the event queued; what must be as it was at the event
(a balance after a ticket) is in the payload. Whatever a unit of work
queued is tried once it is over (``init_app``: at the end of each request
and of each command), so mail still arrives at once when the server is up;
what fails waits for ``deliver_due`` (`flask jobs run`) and its back-off.

A request never waits for SMTP: what it queued is handed to the process's
sender thread (``Sender``), which delivers it after the answer; the rows are
in the outbox already, so a message the thread could not send (the server
silent, the process stopped) is the job's to retry.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from typing import Any

import nh3
from flask import Flask, Response, after_this_request, current_app, has_request_context, request, url_for
from flask_babel import force_locale, get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from billing import clock
from billing.accounts.models import Account, User
from billing.catalogue.models import Pack, Policy
from billing.catalogue.offers import offer
from billing.desk.models import Ticket
from billing.desk.services import opened_by_staff
from billing.ledger.models import Lot, Overage
from billing.models import localized
from billing.notifications import outbox
from billing.orders.models import Invoice, Order, Payment
from billing.quotes import services as quotes
from billing.quotes.models import Quote
from common.extensions import db
from common.mail import transport as mail
from common.tickets import criticality_label, report_context

Context = dict[str, Any]
Attachment = tuple[str, bytes, str]


@dataclass(frozen=True)
class Kind:
    """How to write one kind of message: ``load`` turns the queued row into
    the templates' context (raising Gone when what it speaks of is gone), then
    ``subject`` and ``attachments`` read that context."""

    template: str
    subject: Callable[[Context], Any]
    load: Callable[[outbox.OutboxMessage], Context]
    attachments: Callable[[Context], list[Attachment]] = lambda context: []
    # Payload fields that must not outlive the sending (a link that grants access).
    scrub: tuple[str, ...] = ()
    inline: Callable[[Context], list[Attachment]] = lambda context: []


class Gone(LookupError):
    """What the message speaks of no longer exists: nothing to send."""


def _get(model, ident):
    found = db.session.get(model, ident) if ident is not None else None
    if found is None:
        raise Gone(f"{model.__name__} {ident} no longer exists")
    return found


# --- Orders -----------------------------------------------------------------

def _order(message: outbox.OutboxMessage) -> Context:
    return {"order": _get(Order, message.payload.get("order_id"))}


def _awaiting(message: outbox.OutboxMessage) -> Context:
    from billing.orders import services as orders
    from common import payments

    context = _order(message)
    order = context["order"]
    payment = db.session.get(Payment, message.payload.get("payment_id") or 0) or orders.awaited_payment(
        db.session(), order)
    provider = payments.get(payment.provider) if payment is not None else None
    return {**context, "payment": payment, "provider": provider}


def _instructions(context: Context) -> list[Attachment]:
    from common import documents

    provider, payment = context.get("provider"), context.get("payment")
    if provider is None or payment is None or not provider.manual:
        return []
    return [documents.instructions_attachment(context["order"], payment, provider)]


def _payment_code(context: Context) -> list[Attachment]:
    """The QR code to scan, inline in the message (cid:payment-code)."""
    provider, payment = context.get("provider"), context.get("payment")
    if provider is None or payment is None or not hasattr(provider, "qr_png"):
        return []
    png = provider.qr_png(context["order"], payment)
    return [("payment-code", png, "image/png")] if png else []


def _paid(message: outbox.OutboxMessage) -> Context:
    context = _order(message)
    invoice = db.session.scalar(select(Invoice).where(Invoice.key == f"order:{context['order'].id}:invoice"))
    return {**context, "invoice": invoice}


def _partial(message: outbox.OutboxMessage) -> Context:
    return {**_awaiting(message), "received": message.payload.get("received") or 0}


def _trial(message: outbox.OutboxMessage) -> Context:
    context = _order(message)
    lot = db.session.scalar(select(Lot).where(Lot.order_id == context["order"].id))
    if lot is None:
        raise Gone(f"order {context['order'].id} granted no lot")
    return {**context, "lot": lot}


def _invoice(context: Context) -> list[Attachment]:
    from common import documents

    return [documents.invoice_attachment(context["invoice"])] if context.get("invoice") else []


# --- Tickets ----------------------------------------------------------------

def _ticket(message: outbox.OutboxMessage) -> Context:
    ticket = _get(Ticket, message.payload.get("ticket_id"))
    return {"ticket": ticket, "criticality": criticality_label(ticket.criticality),
            # Staff opened it on the client's behalf (a phone call): the mail says who.
            "opened_for": opened_by_staff(db.session(), ticket)}


def _reply(message: outbox.OutboxMessage) -> Context:
    from billing.desk.models import TicketMessage

    return {**_ticket(message), "reply": _get(TicketMessage, message.payload.get("message_id"))}


def _resolved(message: outbox.OutboxMessage) -> Context:
    ticket = _get(Ticket, message.payload.get("ticket_id"))
    return {**report_context(ticket), "remaining": message.payload.get("remaining"),
            "unit": message.payload.get("unit", ticket.unit)}


def _report(context: Context) -> list[Attachment]:
    from common import documents

    ticket = context["ticket"]
    return [(f"report-{ticket.id}.pdf", documents.render_pdf("pdf/report.html", **context), documents.PDF)]


def _overage(message: outbox.OutboxMessage) -> Context:
    overage = _get(Overage, message.payload.get("overage_id"))
    return {"overage": overage, "ticket": overage.ticket}


# --- Balances ---------------------------------------------------------------

def _low(message: outbox.OutboxMessage) -> Context:
    """A balance below its warning level, or (``ticket_id``) too low for the
    work staff tried to log on a ticket of a ``block`` policy."""
    ticket_id = message.payload.get("ticket_id")
    return {"account": _get(Account, message.account_id), "policy": _get(Policy, message.payload.get("policy_id")),
            "ticket": _get(Ticket, ticket_id) if ticket_id else None,
            **{k: message.payload.get(k) for k in ("units", "threshold", "unit", "missing")}}


def _expiring(message: outbox.OutboxMessage) -> Context:
    lot = _get(Lot, message.payload.get("lot_id"))
    due = datetime.fromisoformat(message.payload["due_at"])
    return {"lot": lot, "units": message.payload.get("units"), "unit": lot.unit, "due_at": due}


# --- People -----------------------------------------------------------------

def _token_link(endpoint: str, purpose: str) -> Callable[[outbox.OutboxMessage], Context]:
    def load(message: outbox.OutboxMessage) -> Context:
        from common.identity.accounts import make_token

        user = _get(User, message.user_id)
        # The token is made now, from the user as they are: a link queued
        # before a password change no longer works, as it should not.
        # Where the person was going (checked when queued, and again by the view).
        back = {"next": message.payload["next"]} if message.payload.get("next") else {}
        context = {"user": user, "signup": bool(message.payload.get("signup")),
                   # A reset mailed because someone ordered with this address (shop.ordering).
                   "order": bool(message.payload.get("order")), "pack": _pack_name(message),
                   # A staff member invited to choose their first password (common.identity.staff).
                   "invite": bool(message.payload.get("invite")), "inviter": message.payload.get("by")}
        if context["order"]:
            # The owner logs in to order; the reset link is for a forgotten password.
            context["login_link"] = url_for("auth.login", _external=True, **back)
            back = {}
        # A reset mailed because someone signed up with this address.
        return {**context, "link": url_for(endpoint, token=make_token(user, purpose), _external=True, **back)}

    return load


def _pack_name(message: outbox.OutboxMessage) -> str | None:
    """The name of the pack a visitor was ordering, in the recipient's language."""
    pack = db.session.get(Pack, message.payload["pack_id"]) if message.payload.get("pack_id") else None
    return offer(pack, message.language).name if pack is not None else None


def _invitation(message: outbox.OutboxMessage) -> Context:
    from billing.desk.models import Invitation

    invitation = _get(Invitation, message.payload.get("invitation_id"))
    token = message.payload.get("token")
    if token is None:
        raise Gone("the invitation's link is not kept once sent")
    return {"invitation": invitation, "inviter": invitation.invited_by,
            "link": url_for("pool.accept", token=token, _external=True), "hours": message.payload.get("hours")}


def _quote(message: outbox.OutboxMessage) -> Context:
    """A quote sent: a client's is read in the portal; a visitor's only
    through the link mailed, whose token is not kept once sent."""
    quote = _get(Quote, message.payload.get("quote_id"))
    if quote.account_id is not None:
        link = url_for("quotes.show", quote_id=quote.id, _external=True)
    elif message.payload.get("token"):
        link = url_for("quote_request.link", token=message.payload["token"], _external=True)
    else:
        raise Gone("the quote's link is not kept once sent")
    return {"quote": quote, "price": quotes.price(quote), "units": quotes.units(quote), "link": link,
            "name": message.user.name if message.user else quote.name}


def _quote_request(message: outbox.OutboxMessage) -> Context:
    """A quote asked for, told to staff: who asks (a client's account, or
    what a visitor typed) and the link to price it."""
    quote = _get(Quote, message.payload.get("quote_id"))
    return {"quote": quote, "contact": ", ".join(filter(None, (quote.company, quote.email))),
            "link": url_for("quotes.staff_quote", quote_id=quote.id, _external=True)}


@functools.cache
def _kinds() -> dict[str, Kind]:
    from common.identity.accounts import RESET, VERIFY

    number = lambda context: context["order"].id  # noqa: E731
    return {
        "verify_email": Kind("verify_email", lambda c: _l("Please confirm your email address"),
                             _token_link("auth.verify_email", VERIFY)),
        "reset_password": Kind("reset_password", lambda c: _l("You already have an account") if c.get("signup")
                               else _l("You already have an account: log in to order") if c.get("order")
                               else _l("Join the team of %(provider)s", provider=current_app.config["PROVIDER_NAME"])
                               if c.get("invite") else _l("Reset your password"),
                               _token_link("auth.reset_password", RESET)),
        "invitation": Kind("invitation", lambda c: _l(
                               "%(name)s invites you to share their support credit",
                               name=c["inviter"].name if c["inviter"] else c["invitation"].account.name),
                           _invitation, scrub=("token",)),
        "order_received": Kind("order_received", lambda c: _l("Your order %(number)s", number=number(c)),
                               _awaiting, _instructions, inline=_payment_code),
        "payment_confirmed": Kind("payment_confirmed",
                                  lambda c: _l("Payment received for order %(number)s", number=number(c)),
                                  _paid, _invoice),
        "payment_partial": Kind("payment_partial",
                                lambda c: _l("Part of the payment for order %(number)s received", number=number(c)),
                                _partial),
        "order_reminder": Kind("order_reminder",
                               lambda c: _l("Reminder: order %(number)s is waiting for your payment",
                                            number=number(c)), _awaiting, _instructions, inline=_payment_code),
        "order_cancelled": Kind("order_cancelled",
                                lambda c: _l("Your order %(number)s is cancelled", number=number(c)), _order),
        "trial_started": Kind("trial_started", lambda c: _l("Your free trial has started"), _trial),
        "ticket_opened": Kind("ticket_opened", lambda c: _l("Ticket #%(number)d opened for you: %(subject)s",
                                                            number=c["ticket"].id, subject=c["ticket"].subject)
                              if c.get("opened_for") else _l("Ticket #%(number)d received: %(subject)s",
                                                             number=c["ticket"].id, subject=c["ticket"].subject),
                              _ticket),
        "ticket_opened_staff": Kind("ticket_opened_staff",
                                    lambda c: _l("New ticket #%(number)d from %(account)s: %(subject)s",
                                                 number=c["ticket"].id, account=c["ticket"].account.name,
                                                 subject=c["ticket"].subject), _ticket),
        "staff_reply": Kind("staff_reply", lambda c: _l("New reply on ticket #%(number)d: %(subject)s",
                                                        number=c["ticket"].id, subject=c["ticket"].subject), _reply),
        "ticket_resolved": Kind("ticket_resolved",
                                lambda c: _l("Ticket #%(number)d is resolved: your intervention report",
                                             number=c["ticket"].id), _resolved, _report),
        "low_balance": Kind("low_balance", lambda c: _l("Work on ticket #%(number)d waits for credit",
                                                        number=c["ticket"].id) if c.get("ticket")
                            else _l("Your support balance is running low"), _low),
        "expiring": Kind("expiring", lambda c: _l("Part of your support credit expires soon"), _expiring),
        "quote_sent": Kind("quote_sent", lambda c: _l("Your quote %(number)s: %(pack)s", number=c["quote"].id,
                                                      pack=localized(c["quote"].pack.name, get_locale().language)),
                           _quote, scrub=("token",)),
        "quote_requested_staff": Kind("quote_requested_staff", lambda c: _l(
                                          "Quote request %(number)d: %(pack)s from %(who)s", number=c["quote"].id,
                                          pack=localized(c["quote"].pack.name, get_locale().language),
                                          who=c["quote"].account.name if c["quote"].account else c["quote"].name),
                                      _quote_request),
        "overage_request": Kind("overage_request",
                                lambda c: _l("Ticket #%(number)d needs your approval", number=c["ticket"].id),
                                _overage),
    }


# --- Delivery ---------------------------------------------------------------


def deliver(message: outbox.OutboxMessage) -> None:
    """Write and send one claimed message; raises on failure (mail.MailError,
    Gone, or whatever writing it raised)."""
    kind = _kinds()[message.kind]
    with force_locale(message.language):
        context = kind.load(message)
        subject = kind.subject(context)
        attachments = kind.attachments(context)
        inline = kind.inline(context)
        context.update(recipient=message.user, payment_code=bool(inline))
        if message.kind not in outbox.ESSENTIAL:
            # What can be switched off says where.
            context["preferences_link"] = url_for("notifications.preferences", _external=True)
    mail.send(message.email, subject, kind.template, message.language, attachments=attachments, inline=inline,
              message_id=message.key, **context)


def deliver_due(*, now: datetime | None = None, keys: list[str] | None = None, limit: int = 100) -> dict[str, int]:
    """Try every message that is due (or only those of ``keys``), each claimed
    first so that two workers never send one twice. Returns counts."""
    session = db.session()
    reading = (lambda: now) if now is not None else clock.now
    done = {"sent": 0, "failed": 0, "skipped": 0}
    for message_id in outbox.due(session, now=reading(), keys=keys, limit=limit):
        message = outbox.claim(session, message_id, now=reading())
        if message is None:
            done["skipped"] += 1
            continue
        try:
            deliver(message)
        except Exception as error:  # noqa: BLE001 - any failure is kept on the row for staff and retried
            session.rollback()
            message = session.get_one(outbox.OutboxMessage, message_id, populate_existing=True)
            current_app.logger.warning("message %s (%s to %s) not sent: %s", message.id, message.kind,
                                       message.email, error)
            # What it speaks of is gone: trying again cannot help.
            outbox.failed(session, message, f"{type(error).__name__}: {error}", now=reading(),
                          final=isinstance(error, Gone))
            done["failed"] += 1
        else:
            outbox.sent(session, message, now=reading(), scrub=_kinds()[message.kind].scrub)
            done["sent"] += 1
    return done


def queued(prefix: str) -> list[str]:
    """The keys this unit of work queued for the event ``prefix``."""
    return [key for key in db.session.info.get("outbox", []) if key.startswith(prefix + ":")]


# How long a person waiting for a link (deliver_now) waits for the sender
# thread before the page says the mail will follow.
LINK_WAIT_SECONDS = 0.5


class _Job:
    def __init__(self, keys: list[str], base_url: str, work: Callable[[], list[str]] | None = None) -> None:
        self.keys = keys
        self.base_url = base_url
        # What queues the messages, when even that must not hold the request.
        self.work = work
        self.done = threading.Event()
        self.result: dict[str, int] | None = None


class Sender:
    """The process's mail thread: delivers the messages requests queued, one
    batch after the other, off the requests' threads. Started on first use
    (after a server forks its workers, each gets its own)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, keys: list[str], base_url: str, work: Callable[[], list[str]] | None = None) -> _Job:
        job = _Job(list(keys), base_url, work)
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                if self._pid != os.getpid():
                    self._queue = queue.Queue()  # a forked child does not inherit the parent's thread
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="forfait-mail", daemon=True)
                self._thread.start()
            self._queue.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                with self.app.app_context():
                    # Without SERVER_NAME (development, tests) links are built
                    # from the address the request came to, as they were inline.
                    links = (nullcontext() if self.app.config.get("SERVER_NAME")
                             else self.app.test_request_context(base_url=job.base_url))
                    with links:
                        if job.work is not None:
                            job.keys = job.keys + list(job.work() or [])
                            db.session.info.pop("outbox", None)
                        job.result = deliver_due(keys=job.keys)
            except Exception:  # noqa: BLE001 - the rows stay pending; the job retries them
                self.app.logger.exception("mail thread: messages %s not delivered now; the job will", job.keys)
            finally:
                job.done.set()


def _sender() -> Sender:
    sender: Sender = current_app.extensions["forfait_mail_sender"]
    return sender


def _in_background() -> bool:
    return has_request_context() and current_app.config["MAIL_DELIVER_IN_BACKGROUND"]


def deliver_now(keys: list[str]) -> bool:
    """Send these queued messages at once, for a person waiting for one (a
    link to confirm an address); True when every one went. A failure stays
    queued and is retried by the job. In a request, the sender thread sends
    them and the request waits LINK_WAIT_SECONDS at most."""
    waiting = db.session.info.get("outbox", [])
    db.session.info["outbox"] = [key for key in waiting if key not in keys]
    if not keys:
        return True
    if _in_background():
        job = _sender().submit(keys, request.host_url)
        job.done.wait(LINK_WAIT_SECONDS)
        return job.result is not None and job.result["sent"] == len(keys)
    done = deliver_due(keys=keys)
    return done["sent"] == len(keys)


def after_answer(work: Callable[[], list[str]]) -> None:
    """Run ``work``, which queues messages and returns their keys, after
    the answer: on the sender thread when mail goes in the background, so
    that what it does takes no time from the request (a reset asked for an
    unknown address answers as fast as for a known one). The thread gets it
    once the answer is sent (when the server closes the response), so that
    not even the thread's work, running beside the answer's last steps,
    slows one answer more than another. Without the thread, now: its
    messages go at the end of the request as usual."""
    if not _in_background():
        work()
        return
    sender, base_url = _sender(), request.host_url

    @after_this_request
    def when_sent(response: Response) -> Response:
        response.call_on_close(lambda: sender.submit([], base_url, work))
        return response


def deliver_queued() -> None:
    """Send what this unit of work queued, if it was committed. Never raises:
    a message that cannot go now waits for the job."""
    if not db.session.registry.has():
        return  # this request never opened a session: nothing was queued
    session = db.session
    keys = session.info.pop("outbox", None)
    if not keys or not current_app.config["MAIL_DELIVER_AT_ONCE"]:
        return
    if not has_request_context() and not current_app.config.get("SERVER_NAME"):
        # A command cannot build the links without SERVER_NAME: trying would
        # only spend the messages' attempts. `flask jobs run` sends them.
        return
    try:
        # Anything left uncommitted is not ours to save; the queued rows,
        # if their transaction committed, are in the database.
        session.rollback()
        if _in_background():
            _sender().submit(keys, request.host_url)
            return
        deliver_due(keys=keys)
    except Exception:  # noqa: BLE001
        session.rollback()
        current_app.logger.exception("queued messages not delivered now; the job will")


def plain(html: str) -> str:
    """A sanitised message body as plain text, for the text part of a mail."""
    text = re.sub(r"<br\s*/?>|</p>|</li>|</div>", "\n", html or "", flags=re.IGNORECASE)
    return unescape(nh3.clean(text, tags=set())).strip()


def init_app(app: Flask) -> None:
    app.jinja_env.filters["plain"] = plain
    app.extensions["forfait_mail_sender"] = Sender(app)
    # At the end of a request, while url_for can still build its links;
    # at the end of an app context too, for commands and scripts.
    app.teardown_request(lambda error: deliver_queued())
    app.teardown_appcontext(lambda error: deliver_queued())

