"""The provider's reports reconcile to the cent (billing.reports)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from reports_support import (
    BREAKAGE,
    CLOSING,
    CONSUMPTION,
    FEBRUARY,
    OPENING,
    OVERAGE_GROSS,
    OVERAGE_NET,
    OVERAGE_VAT,
    SALES_GROSS,
    SALES_NET,
    SALES_VAT,
    at,
    february,
)

from billing.ledger import services as ledger
from billing.reports import activity, credit
from common.extensions import db

START, END = FEBRUARY


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session
        db.session.remove()


@pytest.mark.parametrize("job_ran", [False, True])
def test_sales_less_consumption_and_breakage_is_the_change_in_credit_owed(session, job_ran):
    february(session)
    if job_ran:
        ledger.expire(session, key="expiry-run", now=END)
        session.commit()
    moves = credit.movements(credit.lot_histories(session))
    [eur] = credit.reconcile(moves, START, END)
    assert (eur.currency, eur.opening, eur.closing) == ("EUR", OPENING, CLOSING)
    assert eur.flows == {"sales": SALES_NET, "consumption": CONSUMPTION, "breakage": BREAKAGE, "refunds": 0,
                         "removals": 0}
    assert SALES_NET - CONSUMPTION - BREAKAGE == CLOSING - OPENING
    assert eur.balanced
    # The same figures read as the owed balance at each end.
    assert credit.owed_at(moves, START)["EUR"].value == OPENING
    closing = credit.owed_at(moves, END)["EUR"]
    assert (closing.value, closing.units) == (CLOSING, {"minute": 180 + 573})


def test_the_credit_owed_lapses_on_a_schedule(session):
    february(session)
    moves = credit.movements(credit.lot_histories(session))
    schedule = credit.schedule_at(moves, END)
    assert [(row.month, row.currency, row.unit, row.units, row.value) for row in schedule] == [
        (date(2026, 5, 1), "EUR", "minute", 180, 18000),
        (date(2027, 2, 1), "EUR", "minute", 573, 52525),
    ]
    assert sum(row.value for row in schedule) == CLOSING
    # Just before the expiry, the old lot still owes its 50 minutes.
    assert credit.owed_at(moves, at(2, 10))["EUR"].value == 5000 + 55000 - 642


def test_breakage_is_what_expired_unused(session):
    february(session)
    moves = credit.movements(credit.lot_histories(session))
    [lapsed] = credit.breakage(moves, START, END)
    assert (lapsed.unit, lapsed.units, lapsed.value, lapsed.currency) == ("minute", 50, BREAKAGE, "EUR")
    assert credit.breakage(moves, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)) == []


def test_sales_by_month_pack_and_method(session):
    february(session)
    found = activity.sales(session, START, END)
    assert [(k.pack_slug, k.method, a.count, a.net, a.vat, a.gross) for k, a in found.rows] == [
        ("digitale-10h", "card", 1, 55000, 11000, 66000),
        ("digitale-3h", "transfer", 1, 18000, 3600, 21600),
    ]
    total = found.totals["EUR"]
    assert (total.count, total.net, total.vat, total.gross) == (2, SALES_NET, SALES_VAT, SALES_GROSS)
    assert {key: a.gross for key, a in found.by_method.items()} == {("card", "EUR"): 66000,
                                                                     ("transfer", "EUR"): 21600}
    # The November sale is in November only.
    assert activity.sales(session, datetime(2025, 11, 1, tzinfo=UTC), START).totals["EUR"].net == 18000


def test_time_logged_and_what_an_hour_earned(session):
    february(session)
    moves = credit.movements(credit.lot_histories(session))
    report = activity.time_logged(session, moves, START, END)
    clients = {row.label: (row.billable, row.not_billable, row.earned) for row in report.by_client}
    # Gamma's time is an overage: billed apart, it consumed no credit.
    assert clients == {"Beta Bakery": (27, 15, {"EUR": 642 + 1833}), "Alpha Studio": (30, 0, {"EUR": 3000}),
                       "Gamma Garage": (30, 0, {})}
    assert {row.label: row.rates() for row in report.by_client} == {
        "Beta Bakery": {"EUR": 3536}, "Alpha Studio": {"EUR": 6000}, "Gamma Garage": {}}  # 24.75 for 42 min
    [agent] = report.by_staff
    assert (agent.label, agent.minutes, agent.earned) == ("Agnès Agent", 102, {"EUR": CONSUMPTION})
    # 54.75 for 102 minutes: 32.2058... an hour, rounded half up to 32.21.
    assert agent.rates() == {"EUR": 3221}
    kinds = {row.label: (row.minutes, row.earned) for row in report.by_kind}
    assert kinds == {"production": (60, {"EUR": 3000}), "correction": (27, {"EUR": 2475}),
                     "communication": (15, {})}


def test_a_lot_values_its_movements_to_the_cent():
    lot = credit.LotHistory(1, 1, 1, "minute", "purchase", "EUR", 1000, 3, at(1, 1), at(3, 1), (
        credit.Movement(at(1, 1), "grant", 3), credit.Movement(at(1, 2), "consume", -1),
        credit.Movement(at(1, 3), "consume", -1)))
    valued = credit.walk(lot)
    # 10.00 for 3: 6.66 left after one (3.34 consumed), 3.33 after two (3.33), 3.33 expire.
    assert [(v.kind, v.units, v.amount) for v in valued] == [
        ("grant", 3, 1000), ("consume", -1, -334), ("consume", -1, -333), ("expire", -1, -333)]
    assert sum(v.amount for v in valued) == 0


def test_overage_billed_and_collected(session):
    february(session)
    [eur] = activity.overage(session, START, END)
    billed = eur.billed
    assert (eur.currency, billed.count, billed.net, billed.vat, billed.gross) == (
        "EUR", 1, OVERAGE_NET, OVERAGE_VAT, OVERAGE_GROSS)
    assert eur.collected.count == 0  # the bill waits for its transfer


def test_ratings_by_month(session):
    february(session)
    found = activity.ratings(session, [date(2026, 1, 1), date(2026, 2, 1)])
    assert [(row.month, row.count, str(row.average) if row.average else None) for row in found] == [
        (date(2026, 1, 1), 0, None), (date(2026, 2, 1), 2, "4.50")]


def test_a_rollover_brings_units_back_at_no_value():
    sold = credit.LotHistory(1, 1, 1, "ticket", "purchase", "EUR", 2000, 4, at(1, 1), at(2, 1), (
        credit.Movement(at(1, 1), "grant", 4), credit.Movement(at(1, 5), "consume", -1)))
    back = credit.LotHistory(2, 1, 1, "ticket", "rollover", "EUR", 0, 3, at(2, 10), at(8, 10), (
        credit.Movement(at(2, 10), "grant", 3),))
    moves = credit.movements([sold, back])
    [lapsed] = credit.breakage(moves, START, END)
    assert (lapsed.units, lapsed.value) == (3, 1500)
    [came_back] = credit.rolled_over([sold, back], START, END)
    assert (came_back.units, came_back.value) == (3, 0)
    owed = credit.owed_at(moves, END)["EUR"]
    assert (owed.value, owed.units) == (0, {"ticket": 3})
    [eur] = credit.reconcile(moves, START, END)
    assert eur.balanced and (eur.opening, eur.flows["breakage"], eur.closing) == (1500, 1500, 0)
