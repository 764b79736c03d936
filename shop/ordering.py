"""Checkout's units of work.

A client's order: the invoicing details given with it and the order itself
are written together or not at all.

A visitor's order waits for their address (issue 13.10: nobody learns from
the checkout who has an account). Whether the address is new or an account
uses it, the visitor is answered alike ("check your email") and nothing is
ordered yet: a new address gets its account and the link that confirms it,
which logs in and leads back to the checkout as it was filled in; an address
in use gets a mail to its owner, with a login link that leads to the same
place. The order is placed there, by a click of the person who read the
mail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.accounts import invoicing as billing_accounts
from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.notifications import outbox
from billing.orders import services as orders
from billing.orders.models import Order, Payment
from billing.quotes import services as quotes
from billing.quotes.models import Quote
from billing.transaction import atomic
from common.identity import accounts


@dataclass(frozen=True)
class NewAccount:
    """What the sign-up part of the checkout form says."""

    organisation: str
    name: str
    email: str
    password: str
    language: str
    country: str


@dataclass(frozen=True)
class Invoicing:
    address: str
    vat_id: str


def order(session: Session, pack: Pack, *, buyer: User, invoicing: Invoicing | None, quantity: int, method: str,
          methods: tuple[str, ...], now: datetime, iban: str, expected_total: int, key: str) -> tuple[Order, Payment]:
    """Place the order for ``buyer``. Raises a BillingError (the order's
    fields) with nothing written. ``key`` is the checkout form's: the same
    form sent twice finds the first order (its payment is then no longer
    ``created``)."""
    try:
        with atomic(session):
            if invoicing is not None:
                billing_accounts.set_invoicing_details(session, buyer.client_account, address=invoicing.address,
                                                       vat_id=invoicing.vat_id)
            return orders.place_order(session, buyer.client_account, pack, quantity=quantity, method=method,
                                      methods=methods, by=buyer, now=now, iban=iban, expected_total=expected_total,
                                      key=key)
    except IntegrityError:
        # The same form sent at the same moment placed it first.
        found = orders.placed_under(session, buyer.client_account, key)
        if found is None:
            raise
        return found


def sign_up_to_order(session: Session, new_account: NewAccount, *, pack_id: int, back: str, key: str,
                     now: datetime) -> list[str]:
    """What a visitor's checkout starts, after the answer (the visitor is
    told to check their email either way); returns the keys of the mail
    queued. ``pack_id``: the pack ordered (an id: this runs on the mail
    thread, away from the request's objects). ``back``: the checkout as the visitor filled it in (a path of
    this site), where the mail's link leads. ``key`` is the checkout form's:
    the same form sent twice (the second time, the address is the account
    the first one opened) sends nothing more."""
    try:
        with atomic(session):
            owner = accounts.register(session, new_account.organisation, new_account.name, new_account.email,
                                      new_account.password, new_account.language, new_account.country)
            return outbox.enqueue(session, "verify_email", key, [owner], now=now,
                                  payload={"next": back, "pack_id": pack_id})
    except accounts.EmailTaken:
        pass
    except accounts.AccountError as error:
        # The checkout's form checks the same rules first: only a rule
        # changed on one side and not the other lands here.
        current_app.logger.warning("checkout sign-up refused after the answer: %s (%s)", error.message, error.field)
        return []
    with atomic(session):
        user = accounts.find_user(session, new_account.email)
        sent = session.scalar(select(outbox.OutboxMessage.id).where(
            outbox.OutboxMessage.key.startswith(key + ":", autoescape=True)))
        if user is None or user.removed_at is not None or user.is_staff or sent is not None:
            # Staff do not order; a removed person has no account to log in to.
            return []
        # The owner of the address, told instead of the visitor: a login link
        # back to the order, and a reset link for a forgotten password.
        return outbox.enqueue(session, "reset_password", key, [user], now=now,
                              payload={"order": True, "next": back, "pack_id": pack_id})


def accept_quote(session: Session, quote: Quote, *, buyer: User | None, new_account: NewAccount | None,
                 method: str, methods: tuple[str, ...], now: datetime, iban: str) -> tuple[User, Order, Payment]:
    """Accept a visitor's quote reached by its link, for ``buyer`` (logged
    in) or for the owner of ``new_account`` opened in the same unit of work:
    a refused acceptance (expired, accepted already) leaves no account behind.
    Raises AccountError (the sign-up's fields) or a BillingError."""
    with atomic(session):
        if buyer is not None:
            signed_up = buyer
        else:
            assert new_account is not None
            signed_up = accounts.register(session, new_account.organisation, new_account.name, new_account.email,
                                          new_account.password, new_account.language, new_account.country)
        placed, payment = quotes.accept_quote(session, quote, by=signed_up, method=method, methods=methods,
                                              now=now, iban=iban)
    return signed_up, placed, payment
