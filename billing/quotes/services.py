"""Quotes for packs priced on request (seed 001's plans, seed 004's bundles):
a visitor or a client asks (``request_quote``), staff set the terms and send
them (``send_quote``), the client accepts (``accept_quote``), which places an
order at those terms, paid like any other (billing.orders.services).

Accepting is idempotent and serialised: the quote is re-read under the
account's lock (and its own row lock on PostgreSQL), and its order carries
the key ``quote:<id>`` under a unique constraint, so a double click, two tabs
or two requests at once place one order; a quote past its last day is
refused. Every service is one unit of work (billing.transaction.atomic) and
refuses with a QuoteError a person reads. No Flask here.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.pricing import Price
from billing.clock import utc
from billing.errors import N_, BillingError
from billing.ledger import services as ledger
from billing.models import MAX_INTEGER
from billing.notifications import outbox
from billing.orders import services as orders
from billing.orders.models import Order, Payment
from billing.quotes.models import Quote
from billing.transaction import atomic, in_unit_of_work

MAX_MESSAGE = 2000
# A quote's lot lasts at most ten years; a quote may be accepted up to a year ahead.
MAX_VALIDITY_MONTHS = 120
MAX_DAYS_OPEN = 366
LANGUAGES = ("en", "fr", "es")


class QuoteError(BillingError):
    """A quote request, its terms or its acceptance refused; see BillingError."""


# --- Rules (pure) -----------------------------------------------------------

def on_request(pack: Pack) -> bool:
    """Whether ``pack`` is sold through a quote: on sale, not the trial, and
    without a price in the catalogue."""
    return pack.price is None and pack.kind != "trial" and pack.retired_at is None


def expired(quote: Quote, today: date) -> bool:
    """A sent quote may be accepted up to and including ``valid_until``."""
    return quote.status == "sent" and quote.valid_until is not None and today > quote.valid_until


def terms(quote: Quote) -> orders.Terms:
    if quote.unit_price is None:
        raise QuoteError(N_("This quote has no price yet."))
    return orders.Terms(quote.unit_price, quote.vat_rate_bp, quote.price_includes_vat, quote.validity_months)


def price(quote: Quote) -> Price | None:
    """Net, VAT and gross of the quote's terms; None before it is priced."""
    if quote.unit_price is None or quote.quantity is None:
        return None
    return terms(quote).price(quote.currency, quote.quantity)


def units(quote: Quote) -> int:
    """The units the quote's lot grants: the pack's per item, times the items."""
    return quote.pack.quantity * (quote.quantity or quote.requested_quantity)


def visible_to(quote: Quote, user: User) -> bool:
    """Staff see every quote; a client the quotes of their account."""
    if user.is_staff:
        return True
    return quote.account_id is not None and quote.account_id == user.account_id


def _terms_of(quote: Quote) -> dict[str, object]:
    """What the audit log keeps of a quote before and after staff change it."""
    return {"status": quote.status, "unit_price": quote.unit_price, "quantity": quote.quantity,
            "currency": quote.currency, "validity_months": quote.validity_months, "valid_until": quote.valid_until}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _line(text: str | None, field: str, limit: int, required: bool = True) -> str:
    value = " ".join((text or "").split())
    if required and not value:
        raise QuoteError(N_("This field is required."), field)
    if len(value) > limit:
        raise QuoteError(N_("Keep this under %(max)d characters."), field, max=limit)
    return value


# --- Reading ----------------------------------------------------------------

def by_token(session: Session, token: str) -> Quote | None:
    if not token or len(token) > 100:
        return None
    return session.scalar(select(Quote).where(Quote.token_hash == _token_hash(token)))


def for_staff(session: Session, status: str = "") -> list[Quote]:
    """Requests waiting first, then the rest, newest first."""
    query = select(Quote).order_by(Quote.status != "requested", Quote.created_at.desc(), Quote.id.desc())
    if status:
        query = query.where(Quote.status == status)
    return list(session.scalars(query))


def of_account(session: Session, account_id: int) -> list[Quote]:
    return list(session.scalars(select(Quote).where(Quote.account_id == account_id)
                                .order_by(Quote.created_at.desc(), Quote.id.desc())))



# --- Asking -----------------------------------------------------------------

def request_quote(session: Session, pack: Pack, *, requester: User | None, name: str, email: str, company: str,
                  country: str, language: str, message: str, quantity: int, now: datetime,
                  key: str | None = None) -> Quote:
    """A visitor (``requester`` None: name, email, company and country as
    typed) or a client asks for a quote on ``pack``. The answer never depends
    on whether the email is known: a visitor's request is only a request.
    ``key`` (the one-time token of the form) makes asking idempotent: the
    request made already under it is returned, and staff are not told twice,
    even when both arrive at once."""
    now = utc(now)
    if key is not None:
        done = requested_under(session, pack, requester, key)
        if done is not None:
            return done
    try:
        return _request(session, pack, requester=requester, name=name, email=email, company=company,
                        country=country, language=language, message=message, quantity=quantity, now=now, key=key)
    except IntegrityError:
        # The same form sent at the same moment asked first. A caller's unit
        # of work is lost with it: the caller looks.
        done = (requested_under(session, pack, requester, key)
                if key is not None and not in_unit_of_work(session) else None)
        if done is None:
            raise
        return done


def requested_under(session: Session, pack: Pack, requester: User | None, key: str) -> Quote | None:
    """The request a form keyed ``key`` made already for ``pack``, by the same
    kind of person (a visitor, or a client of the same account)."""
    quote = session.scalar(select(Quote).where(Quote.request_key == key))
    if quote is not None and (quote.pack_id != pack.id
                              or quote.account_id != (requester.account_id if requester else None)):
        raise QuoteError(N_("This form has expired: check it and send it again."), "token")
    return quote


def _request(session: Session, pack: Pack, *, requester: User | None, name: str, email: str, company: str,
             country: str, language: str, message: str, quantity: int, now: datetime, key: str | None) -> Quote:
    with atomic(session):
        if not on_request(pack):
            raise QuoteError(N_("This pack has a price: order it from its page."), "pack")
        if requester is not None and (requester.is_staff or requester.account is None):
            raise QuoteError(N_("Staff send quotes; they do not ask for them."))
        quantity = orders.check_quantity(pack, quantity)
        message = (message or "").strip()
        if len(message) > MAX_MESSAGE:
            raise QuoteError(N_("Keep this under %(max)d characters."), "message", max=MAX_MESSAGE)
        if requester is not None:
            account = requester.client_account
            name, email, company, country = requester.name, requester.email, account.name, account.country
            language = requester.language
        else:
            name = _line(name, "name", 200)
            email = _line(email, "email", 254).lower()
            if "@" not in email or " " in email:
                raise QuoteError(N_("Enter a valid email address."), "email")
            company = _line(company, "company", 200, required=False)
            country = _line(country, "country", 2).upper()
            if len(country) != 2 or not country.isalpha():
                raise QuoteError(N_("Choose a country from the list."), "country")
        quote = Quote(pack=pack, account_id=requester.account_id if requester else None,
                      requested_by_id=requester.id if requester else None, name=name, email=email, company=company,
                      country=country, language=language if language in LANGUAGES else "en", message=message,
                      requested_quantity=quantity, status="requested", currency=pack.currency,
                      vat_rate_bp=pack.vat_rate_bp, price_includes_vat=pack.price_includes_vat, created_at=now,
                      request_key=key)
        session.add(quote)
        session.flush()
        # Someone waits for a price: staff hear of it as of a new ticket.
        outbox.enqueue(session, "quote_requested_staff", f"quote:{quote.id}:requested", outbox.staff(session),
                       now=now, payload={"quote_id": quote.id}, account_id=quote.account_id)
        return quote


# --- Sending ----------------------------------------------------------------

def send_quote(session: Session, quote: Quote, *, by: User, unit_price: int, quantity: int,
               validity_months: int | None, valid_until: date, note: str, now: datetime,
               key: str | None = None) -> str | None:
    """Staff set the terms and send them: the price of one item (minor units
    of the pack's currency, on the pack's VAT basis), the items, the lot's
    validity in months (None: the pack's) and the last day to accept. A quote
    already sent may be sent again with new terms until it is accepted.
    Returns the token of the link mailed (its only copy). ``key`` (the one-time
    token of the form) makes sending idempotent: the same form sent again
    returns None and changes nothing, so the link mailed first keeps working."""
    now = utc(now)
    with atomic(session):
        if not (by.is_staff and by.is_active):
            raise QuoteError(N_("Only staff send a quote."))
        # Locked on PostgreSQL: two sendings of one form at once are one.
        current = session.get_one(Quote, quote.id, populate_existing=True, with_for_update=True)
        if key is not None and current.send_key == key:
            return None
        if current.status not in ("requested", "sent"):
            raise QuoteError(N_("This quote is %(status)s: it can no longer change."), status=current.status)
        pack = current.pack
        if isinstance(unit_price, bool) or not isinstance(unit_price, int) or unit_price < 0:
            raise QuoteError(N_("Enter a positive amount, with no more decimals than the currency has."), "amount")
        try:
            quantity = orders.check_quantity(pack, quantity)
        except orders.OrderError as error:
            raise QuoteError(error.message, "quantity", **error.params) from None
        if unit_price * quantity > MAX_INTEGER // 2:
            raise QuoteError(N_("This amount is larger than any Forfait can record."), "amount")
        if validity_months is not None and not 1 <= validity_months <= MAX_VALIDITY_MONTHS:
            raise QuoteError(N_("Enter a validity from %(min)d to %(max)d months."), "validity_months",
                             min=1, max=MAX_VALIDITY_MONTHS)
        if pack.unlimited and validity_months is not None:
            raise QuoteError(N_("A subscription grants no units: it has no validity."), "validity_months")
        today = now.date()
        if valid_until < today or (valid_until - today).days > MAX_DAYS_OPEN:
            raise QuoteError(N_("Choose a last day from today to a year ahead."), "valid_until")
        note = (note or "").strip()
        if len(note) > MAX_MESSAGE:
            raise QuoteError(N_("Keep this under %(max)d characters."), "note", max=MAX_MESSAGE)
        token = secrets.token_urlsafe(32)
        before = _terms_of(current)
        current.unit_price, current.quantity = unit_price, quantity
        current.validity_months, current.valid_until, current.note = validity_months, valid_until, note
        current.currency, current.vat_rate_bp = pack.currency, pack.vat_rate_bp
        current.price_includes_vat = pack.price_includes_vat
        current.status, current.sent_at, current.sent_by_id = "sent", now, by.id
        current.token_hash, current.send_key = _token_hash(token), key
        session.flush()
        audit.record(by, "quote.send", "quote", current.id, before=before, after=_terms_of(current), session=session)
        event = f"quote:{current.id}:sent:{now:%Y%m%dT%H%M%S%f}"
        payload = {"quote_id": current.id, "token": token}
        requester = current.requested_by
        if current.account_id is not None:
            recipients = [requester] if requester is not None and requester.is_active else []
            recipients = recipients or outbox.owners(session, current.account_id)
            outbox.enqueue(session, "quote_sent", event, recipients, now=now, payload=payload,
                           account_id=current.account_id)
        else:
            outbox.enqueue_address(session, "quote_sent", event, current.email, current.language, now=now,
                                   payload=payload)
        return token


def withdraw_quote(session: Session, quote: Quote, *, by: User, now: datetime) -> Quote:
    """Staff withdraw a request or a quote not accepted: its link stops working."""
    with atomic(session):
        if not (by.is_staff and by.is_active):
            raise QuoteError(N_("Only staff withdraw a quote."))
        current = session.get_one(Quote, quote.id, populate_existing=True)
        if current.status == "accepted":
            raise QuoteError(N_("This quote is accepted: cancel its order instead."))
        before = _terms_of(current)
        current.status, current.token_hash = "withdrawn", None
        audit.record(by, "quote.withdraw", "quote", current.id, before=before, after=_terms_of(current),
                     session=session)
        return current


# --- Accepting --------------------------------------------------------------

def accept_quote(session: Session, quote: Quote, *, by: User, method: str, methods: tuple[str, ...],
                 now: datetime, iban: str) -> tuple[Order, Payment]:
    """``by`` (a person of the quote's account, or of any account for a
    visitor's quote reached by its link) accepts: the order is placed at the
    quote's terms, to be paid by ``method``. Accepted already for this
    account, the same order is returned; past its last day, refused."""
    now = utc(now)
    with atomic(session):
        if by.is_staff or by.account is None or not by.is_active:
            raise QuoteError(N_("Only the client accepts a quote."))
        account: Account = by.client_account
        if quote.account_id is not None and quote.account_id != account.id:
            raise QuoteError(N_("This quote was made for another account."))
        ledger.lock_accounts(session, [account.id])
        current = session.scalars(select(Quote).where(Quote.id == quote.id).with_for_update()
                                  .execution_options(populate_existing=True)).one()
        if current.status == "accepted":
            if current.account_id != account.id or current.order is None:
                raise QuoteError(N_("This quote has already been accepted."))
            return current.order, _first_payment(session, current.order)
        if current.status != "sent":
            raise QuoteError(N_("This quote is not open for acceptance: ask us for a new one."))
        if expired(current, now.date()):
            raise QuoteError(N_("This quote expired on %(day)s: ask us for a new one."), day=current.valid_until)
        if current.account_id is not None and current.account_id != account.id:
            raise QuoteError(N_("This quote was made for another account."))
        try:
            order, payment = orders.place_on_terms(
                session, account, current.pack, buyer=by, quantity=current.quantity or 0, terms=terms(current),
                method=method, methods=methods, now=now, iban=iban, by=by, key=f"quote:{current.id}")
        except orders.OrderError as error:
            raise QuoteError(error.message, error.field, **error.params) from None
        current.status, current.account_id, current.order_id = "accepted", account.id, order.id
        current.accepted_at, current.accepted_by_id = now, by.id
        session.flush()
        return order, payment


def _first_payment(session: Session, order: Order) -> Payment:
    return session.scalars(select(Payment).where(Payment.order_id == order.id).order_by(Payment.id).limit(1)).one()
