"""Checkout's unit of work: a visitor's new account (when they have none
yet), the invoicing details given with the order, and the order itself are
written together or not at all. A refused order leaves no account behind, and
a taken email leaves no order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.accounts import invoicing as billing_accounts
from billing.accounts.models import User
from billing.catalogue.models import Pack
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


def order(session: Session, pack: Pack, *, buyer: User | None, new_account: NewAccount | None,
          invoicing: Invoicing | None, quantity: int, method: str, methods: tuple[str, ...], now: datetime,
          iban: str, expected_total: int, key: str) -> tuple[User, Order, Payment]:
    """Place the order for ``buyer``, or for the owner of ``new_account``
    opened in the same unit of work. Raises AccountError (the sign-up's
    fields) or a BillingError (the order's), with nothing written. ``key``
    is the checkout form's: the same form sent twice finds the first order
    (its payment is then no longer ``created``)."""
    try:
        with atomic(session):
            if buyer is not None:
                signed_up = buyer
            else:
                assert new_account is not None
                signed_up = accounts.register(session, new_account.organisation, new_account.name,
                                              new_account.email, new_account.password, new_account.language,
                                              new_account.country)
            if invoicing is not None:
                billing_accounts.set_invoicing_details(session, signed_up.client_account, address=invoicing.address,
                                                       vat_id=invoicing.vat_id)
            placed, payment = orders.place_order(session, signed_up.client_account, pack, quantity=quantity,
                                                 method=method, methods=methods, by=signed_up, now=now, iban=iban,
                                                 expected_total=expected_total, key=key)
    except IntegrityError:
        # The same form sent at the same moment placed it first.
        found = None if buyer is None else orders.placed_under(session, buyer.client_account, key)
        if buyer is None or found is None:
            raise
        return buyer, *found
    return signed_up, placed, payment


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
