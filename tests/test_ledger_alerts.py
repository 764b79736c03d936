"""Low-balance and expiry warnings: computed, and recorded once as events."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW,
    buy,
    charge,
    days,
    ledger_app,
    new_client,
    pack,
    person,
    session,
    staff,
    ticket,
)
from sqlalchemy import select

from billing.catalogue.offers import PRESETS, CatalogueError, preset_names, read_preset
from billing.ledger.models import Event
from billing.notifications import alerts


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
    assert (low.units, low.threshold, low.notified_at) == (6, 7, NOW)  # its mail is queued at once
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


# --- The default threshold comes from the policy --------------------------

@pytest.fixture
def toopixel_warns_at_half(session):
    """Too Pixel's policy with a 50 % threshold, for one test of the shared database."""
    policy = pack(session, "toopixel-36").policy
    policy.low_balance_percent = 50
    session.commit()
    yield policy
    policy.low_balance_percent = 20
    session.commit()


def test_the_default_threshold_is_the_policys_share_of_the_last_pack(session, toopixel_warns_at_half):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    assert alerts.threshold_for(session, account.id, toopixel_warns_at_half.id, "credit") == 18
    work = ticket(session, account, owner)
    charge(session, work, 170)  # 17 credits: 19 left, not below 18
    assert events(session, account, "low_balance") == []
    charge(session, work, 180)  # 18 credits: 18 left, still not below
    charge(session, work, 190)  # 17 left
    [low] = events(session, account, "low_balance")
    assert (low.units, low.threshold) == (17, 18)


def test_a_policy_at_zero_percent_has_no_default_warning(session, toopixel_warns_at_half):
    toopixel_warns_at_half.low_balance_percent = 0
    session.commit()
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 350)
    assert alerts.threshold_for(session, account.id, toopixel_warns_at_half.id, "credit") == 0
    assert events(session, account, "low_balance") == []


def preset_with(tmp_path, line: str | None) -> Path:
    """A copy of the Too Pixel preset whose policy has ``line`` added."""
    text = (PRESETS / "toopixel.toml").read_text()
    if line is not None:
        text = text.replace('slug = "toopixel-credits"\n', f'slug = "toopixel-credits"\n{line}\n', 1)
    (tmp_path / "toopixel.toml").write_text(text)
    return tmp_path


def test_the_catalogue_files_may_set_the_share_and_stay_valid_without_it(tmp_path):
    for name in preset_names():
        for policy in read_preset(name).policies.values():
            assert policy.values["low_balance_percent"] == 20, (name, policy.slug)
    [policy] = read_preset("toopixel", preset_with(tmp_path, "low_balance_percent = 35")).policies.values()
    assert policy.values["low_balance_percent"] == 35
    for wrong in ("low_balance_percent = 101", "low_balance_percent = -1", 'low_balance_percent = "20"'):
        with pytest.raises(CatalogueError, match="low_balance_percent"):
            read_preset("toopixel", preset_with(tmp_path, wrong))
