"""The provider's clients as staff look them up: every account with what it
holds, owes and is asked, its next expiry and its last activity; searched,
sorted and read a page at a time.

A page costs two steps, whatever the number of accounts: the ids of the page
(the filter, and only the one sort key asked for, a correlated subquery per
account that the indexes answer with a seek or two), then everything shown
for those ids alone, in a handful of grouped queries. ``bench/clients.py``
measures it on 10,000 accounts.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from math import ceil
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from billing.accounts.models import Account, LoginSession, User
from billing.catalogue.models import Policy
from billing.clock import utc
from billing.desk.models import Ticket
from billing.ledger.models import Entry, Lot, Overage
from billing.ledger.services import Balance, balances
from billing.orders.models import Invoice, Order
from billing.orders.references import normalise

# What a list can be sorted by; each but the name puts the largest (or, for
# the next expiry, the nearest) first unless asked otherwise.
SORTS = ("name", "balance", "debt", "pending", "expiry", "activity")
DESCENDING_FIRST = {"balance", "debt", "pending", "activity"}
PER_PAGE = 50
# Longer searches are cut: nobody types more to find a client.
MAX_QUERY = 100


@dataclass(frozen=True)
class Holding:
    """What an account holds, owes and is asked for beyond it, in one unit."""

    unit: str
    units: int = 0
    debt: int = 0
    pending: int = 0


@dataclass(frozen=True)
class ClientRow:
    id: int
    name: str
    country: str
    people: int
    holdings: list[Holding]
    requests: int              # overage requests awaiting the owner's answer
    next_expiry: datetime | None
    last_activity: datetime | None


@dataclass(frozen=True)
class ClientPage:
    rows: list[ClientRow]
    total: int
    page: int
    pages: int
    sort: str
    descending: bool
    query: str = ""
    countries: frozenset[str] = field(default_factory=frozenset)


def _usable(now: datetime) -> ColumnElement[bool]:
    return and_(Lot.remaining > 0, or_(Lot.expires_at.is_(None), Lot.expires_at > now))


def _last_activity() -> ColumnElement[Any]:
    """The latest of the account's last ledger movement, ticket opened or
    changed, and order placed: four seeks, one index each."""
    each = union_all(*(select(func.max(at).label("at")).where(account_id == Account.id).correlate(Account)
                       for at, account_id in ((Entry.effective_at, Entry.account_id),
                                              (Ticket.created_at, Ticket.account_id),
                                              (Ticket.updated_at, Ticket.account_id),
                                              (Order.created_at, Order.account_id)))).subquery()
    return select(func.max(each.c.at)).correlate(Account).scalar_subquery()


def sort_key(sort: str, now: datetime) -> ColumnElement[Any]:
    """The value an account is sorted by. Quantities in different units are
    compared as the minutes of work they pay for (a ticket: its maximum)."""
    if sort == "balance":
        return (select(func.coalesce(func.sum(Lot.remaining * Policy.unit_minutes), 0)).select_from(Lot)
                .join(Policy, Policy.id == Lot.policy_id)
                .where(Lot.account_id == Account.id, _usable(now)).correlate(Account).scalar_subquery())
    if sort == "debt":
        return (select(func.coalesce(func.sum((Overage.units - Overage.settled) * Policy.unit_minutes), 0))
                .select_from(Overage).join(Ticket, Ticket.id == Overage.ticket_id)
                .join(Policy, Policy.id == Ticket.policy_id)
                .where(Overage.account_id == Account.id, Overage.status == "debt")
                .correlate(Account).scalar_subquery())
    if sort == "pending":
        return (select(func.count(Overage.id)).where(Overage.account_id == Account.id, Overage.status == "pending")
                .correlate(Account).scalar_subquery())
    if sort == "expiry":
        return (select(func.min(Lot.expires_at))
                .where(Lot.account_id == Account.id, Lot.remaining > 0, Lot.expires_at > now)
                .correlate(Account).scalar_subquery())
    if sort == "activity":
        return _last_activity()
    return func.lower(Account.name)


def matching(query: str, countries: Collection[str] = ()) -> ColumnElement[bool] | None:
    """Accounts whose name, people (name or email), an order's payment
    reference or an invoice's number, or country matches ``query``;
    ``countries``: the ISO codes whose name in the reader's language contains
    it (the caller knows the language). None: no filter."""
    query = " ".join(query.split())[:MAX_QUERY]
    if not query:
        return None
    people = select(User.account_id).where(
        User.account_id.is_not(None), or_(User.name.icontains(query, autoescape=True),
                                           User.email.icontains(query, autoescape=True)))
    reference = normalise(query)
    documents = union_all(select(Order.account_id).where(Order.reference == reference),
                          select(Invoice.account_id).where(Invoice.number == query.upper()))
    found = [Account.name.icontains(query, autoescape=True), Account.id.in_(people), Account.id.in_(documents)]
    codes = {code.upper() for code in countries} | ({query.upper()} if len(query) == 2 and query.isalpha() else set())
    if codes:
        found.append(Account.country.in_(sorted(codes)))
    if query.startswith("#") and query[1:].isdigit() and len(query) < 11:
        found.append(Account.id == int(query[1:]))
    return or_(*found)


# The page's query: the account id, and whatever rides along (the total).
PageQuery = Select[*tuple[Any, ...]]


def _page_ids(query: PageQuery, sort: str, descending: bool, now: datetime, offset: int, limit: int) -> PageQuery:
    key = sort_key(sort, now)
    ordered = key.desc() if descending else key.asc()
    # Nothing known (no expiry ahead, no activity) goes last either way.
    if sort in ("expiry", "activity"):
        ordered = ordered.nulls_last()
    name = func.lower(Account.name)
    return query.order_by(ordered, name.desc() if descending and sort == "name" else name, Account.id
                          ).offset(offset).limit(limit)


def clients(session: Session, *, now: datetime, query: str = "", countries: Collection[str] = (),
            sort: str = "name", descending: bool | None = None, page: int = 1,
            per_page: int = PER_PAGE) -> ClientPage:
    """One page of the accounts that match ``query``, sorted by ``sort``
    (one of SORTS; the name otherwise); ``descending`` None: the sort's own
    first direction. A page past the last gives the last."""
    now = utc(now)
    sort = sort if sort in SORTS else "name"
    descending = sort in DESCENDING_FIRST if descending is None else descending
    where = matching(query, countries)
    # The total rides on each row of the page (a window count), so that the
    # filter runs once; only a page past the last needs a count of its own.
    base = select(Account.id, func.count().over())
    if where is not None:
        base = base.where(where)
    page = max(1, page)
    found = session.execute(_page_ids(base, sort, descending, now, (page - 1) * per_page, per_page)).all()
    total = found[0][1] if found else 0
    if not found and page > 1:
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
        if total:
            page = ceil(total / per_page)
            found = session.execute(_page_ids(base, sort, descending, now, (page - 1) * per_page, per_page)).all()
    pages = max(1, ceil(total / per_page))
    ids: list[int] = [row[0] for row in found]
    return ClientPage(rows=rows_for(session, ids, now=now), total=total, page=page, pages=pages, sort=sort,
                      descending=descending, query=query)


def rows_for(session: Session, ids: list[int], *, now: datetime) -> list[ClientRow]:
    """What the list shows of each account of ``ids``, in that order."""
    if not ids:
        return []
    now = utc(now)
    accounts = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(ids)))}
    people: dict[int, int] = dict(session.execute(  # type: ignore[arg-type]
        select(User.account_id, func.count(User.id))
        .where(User.account_id.in_(ids), User.removed_at.is_(None)).group_by(User.account_id)).all())
    held = (select(Lot.account_id, Lot.unit, func.sum(Lot.remaining).label("units"), literal(0).label("debt"),
                   literal(0).label("pending"), func.min(Lot.expires_at).label("expiry"))
            .where(Lot.account_id.in_(ids), _usable(now)).group_by(Lot.account_id, Lot.unit))
    owed = (select(Overage.account_id, Ticket.unit, literal(0), func.sum(Overage.units - Overage.settled),
                   literal(0), literal(None))
            .join(Ticket, Ticket.id == Overage.ticket_id)
            .where(Overage.account_id.in_(ids), Overage.status == "debt").group_by(Overage.account_id, Ticket.unit))
    asked = (select(Overage.account_id, Ticket.unit, literal(0), literal(0), func.sum(Overage.units - Overage.settled),
                    literal(None))
             .join(Ticket, Ticket.id == Overage.ticket_id)
             .where(Overage.account_id.in_(ids), Overage.status == "pending")
             .group_by(Overage.account_id, Ticket.unit))
    holdings: dict[int, dict[str, Holding]] = {}
    expiries: dict[int, datetime] = {}
    account_id: int
    unit: str
    units: int
    debt: int
    pending: int
    expiry: datetime | None
    for account_id, unit, units, debt, pending, expiry in session.execute(union_all(held, owed, asked)):
        mine = holdings.setdefault(account_id, {})
        was = mine.get(unit, Holding(unit))
        mine[unit] = Holding(unit, was.units + units, was.debt + debt, was.pending + pending)
        if expiry is not None:
            expiries[account_id] = min(expiry, expiries.get(account_id, expiry))
    requests: dict[int, int] = dict(session.execute(
        select(Overage.account_id, func.count(Overage.id))
        .where(Overage.account_id.in_(ids), Overage.status == "pending").group_by(Overage.account_id)).all())
    activity: dict[int, datetime | None] = dict(session.execute(
        select(Account.id, _last_activity()).where(Account.id.in_(ids))).all())
    return [
        ClientRow(id=i, name=accounts[i].name, country=accounts[i].country, people=people.get(i, 0),
                  holdings=sorted(holdings.get(i, {}).values(), key=lambda h: h.unit),
                  requests=requests.get(i, 0), next_expiry=expiries.get(i),
                  last_activity=activity.get(i))
        for i in ids if i in accounts
    ]


# --- One account, as the staff's account page shows it ------------------------

# How many of each list the page shows, the most recent first.
RECENT = 20


@dataclass(frozen=True)
class Person:
    user: User
    last_login: datetime | None


@dataclass(frozen=True)
class Overview:
    people: list[Person]
    balances: list[tuple[Policy, Balance]]
    lots: list[Lot]
    orders: list[Order]
    invoices: list[Invoice]
    tickets: list[Ticket]
    requests: int
    next_expiry: datetime | None
    last_activity: datetime | None


def overview(session: Session, account: Account, *, now: datetime) -> Overview:
    """The account's people (who still have access first, each with their
    last login), its balances, its recent lots (used up and expired ones
    too), orders, invoices and tickets."""
    now = utc(now)
    last_login = (select(func.max(LoginSession.created_at)).where(LoginSession.user_id == User.id)
                  .correlate(User).scalar_subquery())
    people = [Person(user, at) for user, at in session.execute(
        select(User, last_login).where(User.account_id == account.id)
        .order_by(User.removed_at.is_not(None), User.role != "owner", User.id))]
    row = rows_for(session, [account.id], now=now)[0]
    found = balances(session, account.id, now=now)
    policies = {p.id: p for p in session.scalars(select(Policy).where(Policy.id.in_({b.policy_id for b in found})))}
    return Overview(
        people=people, balances=[(policies[b.policy_id], b) for b in found],
        lots=list(session.scalars(select(Lot).where(Lot.account_id == account.id)
                                  .order_by(Lot.created_at.desc(), Lot.id.desc()).limit(RECENT))),
        orders=list(session.scalars(select(Order).where(Order.account_id == account.id)
                                    .order_by(Order.created_at.desc(), Order.id.desc()).limit(RECENT))),
        invoices=list(session.scalars(select(Invoice).where(Invoice.account_id == account.id)
                                      .order_by(Invoice.issued_at.desc(), Invoice.id.desc()).limit(RECENT))),
        tickets=list(session.scalars(select(Ticket).where(Ticket.account_id == account.id)
                                     .order_by(func.coalesce(Ticket.updated_at, Ticket.created_at).desc(),
                                               Ticket.id.desc()).limit(RECENT))),
        requests=row.requests, next_expiry=row.next_expiry, last_activity=row.last_activity)
