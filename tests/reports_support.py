"""A month of activity for the reports, with every figure computed by hand.

Digitale Artiste (EUR, prices net, VAT 20 %, minutes):
- Alpha bought the 3 h pack (180 min for 180.00) on 10 November 2025; it
  expires on 10 February 2026. 100 min were used in December, so on
  1 February it owes 180.00 x 80/180 = 80.00.
- February 2026: Beta buys the 10 h pack (600 min for 550.00) by card on the
  3rd; 7 min on the 4th leave 593 min owing 550.00 x 593/600 = 543.5833,
  rounded down 543.58 (so 6.42 consumed); 20 min on the 20th leave 573 min,
  525.25 (18.33 consumed). 15 min of e-mail (not billable) on the 6th.
- Gamma holds no credit: 30 min on the 22nd ask for an overage, which its
  owner approves on the 23rd: billed at 65.00 an hour, 32.50 net + 6.50 VAT
  = 39.00, by transfer. Credit owed does not move.
- Ratings: 5 and 4 given on the 21st (average 4.50).
- Alpha uses 30 min on the 5th (50 left: 50.00, so 30.00 consumed); the 50
  min expire unused on the 10th (breakage 50.00); Alpha buys another 3 h
  pack by transfer on the 15th (180.00).

So in February: opening 80.00, sales 730.00 (net; 146.00 VAT, 876.00 gross),
consumption 30.00 + 6.42 + 18.33 = 54.75, breakage 50.00, closing
180.00 + 525.25 = 705.25 = 80.00 + 730.00 - 54.75 - 50.00.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.orders import overage_bills
from billing.orders.models import Order

FEBRUARY = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
OPENING, SALES_NET, SALES_VAT, SALES_GROSS = 8000, 73000, 14600, 87600
CONSUMPTION, BREAKAGE, CLOSING = 5475, 5000, 70525
OVERAGE_NET, OVERAGE_VAT, OVERAGE_GROSS = 3250, 650, 3900
_serial = itertools.count(1)


def at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 9, 0, tzinfo=UTC)


@dataclass
class Month:
    alpha: Account
    beta: Account
    gamma: Account
    agent: User


def _pack(session: Session, slug: str) -> Pack:
    found = session.scalar(select(Pack).where(Pack.slug == slug))
    if found is None:
        load_preset(session, "digitale")
        found = session.scalar(select(Pack).where(Pack.slug == slug))
    assert found is not None
    return found


def _buy(session: Session, account: Account, slug: str, method: str, when: datetime) -> Order:
    pack = _pack(session, slug)
    assert pack.price is not None
    vat = pack.price * pack.vat_rate_bp // 10000
    order = Order(account=account, pack=pack, quantity=1, status="paid", method=method, unit_price=pack.price,
                  vat_rate_bp=pack.vat_rate_bp, net=pack.price, vat=vat, total=pack.price + vat,
                  currency=pack.currency, created_at=when, paid_at=when)
    session.add(order)
    session.flush()
    ledger.grant(session, account, pack, key=f"order:{order.id}:grant", now=when, order=order)
    session.commit()
    return order


def _work(session: Session, ticket: Ticket, agent: User, minutes: int, when: datetime, billable: bool = True) -> None:
    desk.log_time(session, ticket, agent, minutes, billable, "", f"t{next(_serial)}", when)


def february(session: Session) -> Month:
    alpha = Account(name="Alpha Studio", country="FR")
    beta = Account(name="Beta Bakery", country="FR")
    gamma = Account(name="Gamma Garage", country="FR")
    agent = User(email="agnes@example.com", name="Agnès Agent", password_hash="-", role="agent", is_staff=True)
    owners = [User(account=account, email=f"owner{i}@example.com", name=f"Owner {i}", password_hash="-",
                   role="owner") for i, account in enumerate((alpha, beta, gamma))]
    session.add_all([alpha, beta, gamma, agent, *owners])
    session.commit()
    policy = _pack(session, "digitale-3h").policy

    def ticket(account: Account, owner: User, kind: str, when: datetime) -> Ticket:
        return ledger.open_ticket(session, account, owner, "Help", now=when, kind=kind, policy=policy)

    _buy(session, alpha, "digitale-3h", "transfer", at(11, 10, 2025))
    _work(session, ticket(alpha, owners[0], "production", at(12, 1, 2025)), agent, 100, at(12, 1, 2025))
    _buy(session, beta, "digitale-10h", "card", at(2, 3))
    beta_ticket = ticket(beta, owners[1], "correction", at(2, 4))
    _work(session, beta_ticket, agent, 7, at(2, 4))
    alpha_ticket = ticket(alpha, owners[0], "production", at(2, 5))
    _work(session, alpha_ticket, agent, 30, at(2, 5))
    _work(session, ticket(beta, owners[1], "communication", at(2, 6)), agent, 15, at(2, 6), billable=False)
    _buy(session, alpha, "digitale-3h", "transfer", at(2, 15))
    _work(session, beta_ticket, agent, 20, at(2, 20))
    for rated, stars in ((alpha_ticket, 5), (beta_ticket, 4)):
        rated.rating, rated.rated_at = stars, at(2, 21)
    session.commit()
    gamma_ticket = ticket(gamma, owners[2], "production", at(2, 22))
    _work(session, gamma_ticket, agent, 30, at(2, 22))
    [asked] = gamma_ticket.overages
    overage_bills.approve(session, asked, by=owners[2], now=at(2, 23))
    session.commit()
    return Month(alpha, beta, gamma, agent)
