"""Statements (function, command line, page) and `flask ledger verify`."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import select, update

from billing import ledger
from billing.ledger_models import Entry, Lot
from billing.statement import statement
from common.extensions import db
from ledger_support import NOW, assert_verified, buy, charge, client, days, key, pack, person, staff, ticket

both = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
FEBRUARY = (date(2026, 2, 1), date(2026, 2, 28))


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session


def two_months(session):
    """Too Pixel: 36 credits on 5 January, 27 min in January, 60 min and a
    goodwill adjustment in February."""
    account, owner = client(session)
    buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 27, now=NOW + days(5))
    february = NOW + days(30)
    charge(session, ticket(session, account, owner), 60, now=february)
    ledger.adjust(session, account, pack(session, "toopixel-36").policy, 2, reason="goodwill",
                  by=staff(session), key=key(), now=february + days(1))
    return account


@both
def test_statement_of_a_month(session):
    account = two_months(session)
    [part] = statement(session, account, *FEBRUARY, now=NOW + days(60)).sections
    assert (part.opening, part.consumed, part.total(part.adjustments), part.closing) == (33, 6, 2, 29)
    assert part.grants == [] and [use.units for use in part.consumption] == [6]
    [january] = statement(session, account, date(2026, 1, 1), date(2026, 1, 31), now=NOW + days(60)).sections
    assert (january.opening, january.total(january.grants), january.consumed, january.closing) == (0, 36, 3, 33)


@both
def test_an_expiry_shows_whether_or_not_the_job_ran(session):
    account, owner = client(session)
    lot = buy(session, account, "digitale-3h")
    charge(session, ticket(session, account, owner), 30)
    april = (date(2026, 4, 1), date(2026, 4, 30))
    later = NOW + days(120)
    before_job = statement(session, account, *april, now=later).sections[0]
    ledger.expire(session, key=key(), now=later)
    after_job = statement(session, account, *april, now=later).sections[0]
    for part in (before_job, after_job):
        assert (part.opening, part.closing) == (150, 0)
        assert [(e.units, e.at) for e in part.expiries] == [(-150, lot.expires_at)]
    assert_verified(session)


def test_a_statement_before_anything_happened_is_empty(session):
    account = two_months(session)
    [part] = statement(session, account, date(2025, 1, 1), date(2025, 12, 31), now=NOW).sections
    assert (part.opening, part.closing, part.grants, part.consumption) == (0, 0, [], [])


def test_command_line_statement(app, runner):
    with app.app_context():
        account_id = two_months(db.session).id
    result = runner.invoke(args=["ledger", "statement", str(account_id), "--from", "2026-02-01", "--to", "2026-02-28"])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines()]
    assert [(line[3], line[6]) for line in lines] == [("opening", "33"), ("consume", "-6"), ("adjust", "2"),
                                                      ("closing", "29")]
    result = runner.invoke(args=["ledger", "statement", str(account_id), "--from", "2026-02-01", "--to",
                                 "2026-02-28", "--csv"])
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert table[-1] == {"balance": "toopixel-credits", "unit": "credit", "date": "2026-02-28",
                         "movement": "closing", "lot": "", "ticket": "", "units": "29", "detail": ""}


@pytest.mark.parametrize(
    "args, message",
    [
        (["999", "--from", "2026-02-01", "--to", "2026-02-28"], "no account '999'"),
        (["abc", "--from", "2026-02-01", "--to", "2026-02-28"], "no account 'abc'"),
        (["1", "--from", "2026-02-30", "--to", "2026-02-28"], "--from '2026-02-30' is not a date"),
        (["1", "--from", "2026-02-01", "--to", "soon"], "--to 'soon' is not a date"),
        (["1", "--from", "2026-02-01", "--to", "2026-01-01"], "ends (2026-01-01) before it starts"),
        (["1", "--from", "2026-02-01"], "Missing option '--to'"),
    ],
)
def test_command_line_statement_refuses_bad_input_in_one_line(app, runner, args, message):
    with app.app_context():
        client(db.session)
    result = runner.invoke(args=["ledger", "statement", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr


# --- The page -------------------------------------------------------------

def log_in(http, user_id: int) -> None:
    with http.session_transaction() as cookie:
        cookie["_user_id"] = str(user_id)
        cookie["_fresh"] = True


@pytest.fixture
def february(app):
    with app.app_context():
        account = two_months(db.session)
        member = person(db.session, account, role="member")
        stranger = client(db.session)[1]
        return {"account": account.id, "member": member.id, "stranger": stranger.id, "staff": staff(db.session).id}


def page(account_id: int, **query) -> str:
    params = {"from": "2026-02-01", "to": "2026-02-28", **query}
    return f"/portal/accounts/{account_id}/statement?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_the_page_sends_anonymous_visitors_to_log_in(client, february):
    answer = client.get(page(february["account"]))
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


@pytest.mark.parametrize("who, status", [("member", 200), ("staff", 200), ("stranger", 403)])
def test_the_page_is_for_the_accounts_users_and_staff(client, february, who, status):
    log_in(client, february[who])
    answer = client.get(page(february["account"]))
    assert answer.status_code == status
    if status == 200:
        text = answer.get_data(as_text=True)
        assert "Opening balance" in text and "goodwill" in text and "29 credits" in text


def test_the_page_downloads_csv_and_refuses_bad_dates(client, february):
    log_in(client, february["member"])
    answer = client.get(page(february["account"], format="csv"))
    assert answer.mimetype == "text/csv"
    assert answer.get_data(as_text=True).splitlines()[-1] == "toopixel-credits,credit,2026-02-28,closing,,,29,"
    assert client.get(page(february["account"], to="yesterday")).status_code == 400
    assert client.get(page(february["account"], to="2026-01-01")).status_code == 400
    assert client.get(page(99999)).status_code == 404


# --- flask ledger verify --------------------------------------------------

@both
def test_verify_passes_after_the_scenarios_and_finds_a_tampered_remaining(app, runner):
    with app.app_context():
        account = two_months(db.session)
        lot_id = db.session.scalar(select(Lot.id).where(Lot.account_id == account.id))
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0 and result.output.startswith("ok\t"), result.output
    with app.app_context():
        db.session.execute(update(Lot).where(Lot.id == lot_id).values(remaining=Lot.remaining + 1))
        db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"lot {lot_id}: remaining 28 but its entries sum to 27" in result.output


def test_verify_finds_a_ticket_charged_against_the_rule_and_a_draw_out_of_order(app, runner):
    with app.app_context():
        session = db.session
        account, owner = client(session)
        early = buy(session, account, "toopixel-36")
        late = buy(session, account, "toopixel-72", now=NOW + days(10))
        work = ticket(session, account, owner)
        charge(session, work, 10)
        # Move the draw to the later lot by hand, as a bug would.
        session.execute(update(Entry).where(Entry.ticket_id == work.id).values(lot_id=late.id))
        session.execute(update(Lot).where(Lot.id == early.id).values(remaining=36))
        session.execute(update(Lot).where(Lot.id == late.id).values(remaining=71))
        work.units_charged = 2
        session.commit()
        early_id, late_id, ticket_id = early.id, late.id, work.id
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"drew from lot {late_id} while lot {early_id}, which comes first, held 36" in result.output
    assert f"ticket {ticket_id}: 10 min cost 1 credit(s), charged 2" in result.output
