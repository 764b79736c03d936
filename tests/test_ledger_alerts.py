"""Low-balance and expiry warnings: computed, and recorded once as events."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing import alerts
from billing.ledger_models import Event
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW, buy, charge, days, ledger_app, new_client, pack, person, session, staff, ticket,
)


def events(session, account, kind):
    return session.scalars(select(Event).where(Event.account_id == account.id, Event.kind == kind)
                           .order_by(Event.id)).all()


@pytest.mark.parametrize(
    "before, after, threshold, crossed",
    [(10, 6, 7, True), (7, 6, 7, True), (6, 5, 7, False), (10, 7, 7, False), (10, 0, 0, False), (3, 9, 7, False)],
)
def test_a_crossing_is_from_at_or_above_to_below(before, after, threshold, crossed):
    assert alerts.crossed_below(before, after, threshold) is crossed


def test_the_default_threshold_is_a_fifth_of_the_last_pack():
    assert [alerts.default_threshold(n) for n in (36, 720, 15, None)] == [7, 144, 3, 0]


def test_expires_within():
    assert alerts.expires_within(NOW + days(30), NOW, 30)
    assert not alerts.expires_within(NOW + days(31), NOW, 30)
    assert not alerts.expires_within(NOW, NOW, 30) and not alerts.expires_within(None, NOW, 30)


def test_low_balance_is_recorded_once_per_crossing(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 27)
    assert events(session, account, "low_balance") == []
    charge(session, work, 300)  # 30 credits: 6 left, below 7
    charge(session, work, 310)  # 5 left: still below, no second warning
    [low] = events(session, account, "low_balance")
    assert (low.units, low.threshold, low.notified_at) == (6, 7, None)
    buy(session, account, "toopixel-36")  # 41: above again, the warning re-arms
    charge(session, ticket(session, account, owner), 350)
    assert [e.units for e in events(session, account, "low_balance")] == [6, 6]


def test_the_owner_sets_the_threshold(session):
    account, owner = new_client(session)
    member = person(session, account, role="member")
    policy = pack(session, "toopixel-36").policy
    with pytest.raises(alerts.AlertError):
        alerts.set_threshold(session, account, policy, 20, by=member)
    with pytest.raises(alerts.AlertError, match="whole number"):
        alerts.set_threshold(session, account, policy, -1, by=owner)
    alerts.set_threshold(session, account, policy, 30, by=owner)
    alerts.set_threshold(session, account, policy, 20, by=staff(session))
    assert alerts.threshold_for(session, account.id, policy.id, "credit") == 20
    buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 170)
    [low] = events(session, account, "low_balance")
    assert (low.units, low.threshold) == (19, 20)


def test_expiry_warnings_once_per_lot(session):
    account, _ = new_client(session)
    lot = buy(session, account, "digitale-3h")
    buy(session, account, "digitale-10h")
    soon = lot.expires_at - days(20)
    alerts.warn_expiring(session, now=soon, days=30)
    assert alerts.warn_expiring(session, now=soon + days(1), days=30) == 0
    [warning] = events(session, account, "expiring")
    assert (warning.lot_id, warning.units, warning.due_at) == (lot.id, 180, lot.expires_at)
