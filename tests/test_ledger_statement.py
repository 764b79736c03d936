"""Statements: the function, `flask ledger statement` and the page."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW,
    assert_verified,
    both,
    buy,
    charge,
    days,
    held,
    key,
    ledger_app,
    new_client,
    pack,
    person,
    session,
    staff,
    ticket,
    toopixel_allows_overage,
    two_months,
)
from sqlalchemy import select as sa_select

from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.statement import rows, statement
from billing.orders import overage_bills

FEBRUARY = (date(2026, 2, 1), date(2026, 2, 28))


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
    account, owner = new_client(session)
    lot = buy(session, account, "digitale-3h")
    charge(session, ticket(session, account, owner), 30)
    april = (date(2026, 4, 1), date(2026, 4, 30))
    later = NOW + days(120)
    before_job = statement(session, account, *april, now=later).sections[0]
    ledger.expire(session, key=key(), now=later, account_id=account.id)
    after_job = statement(session, account, *april, now=later).sections[0]
    for part in (before_job, after_job):
        assert (part.opening, part.closing) == (150, 0)
        assert [(e.units, e.at) for e in part.expiries] == [(-150, lot.expires_at)]
    assert_verified(session, account)


def test_a_statement_before_anything_happened_is_empty(session):
    account = two_months(session)
    [part] = statement(session, account, date(2025, 1, 1), date(2025, 12, 31), now=NOW).sections
    assert (part.opening, part.closing, part.grants, part.consumption) == (0, 0, [], [])


@pytest.fixture
def runner(ledger_app):
    return ledger_app.test_cli_runner()


# --- Debts and overage requests -------------------------------------------

JANUARY, MARCH = (date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 3, 1), date(2026, 3, 31))


def adds_up(report) -> None:
    """Opening plus the movements that move the balance gives closing, in every balance."""
    lines = rows(report)
    for part in report.sections:
        mine = [line for line in lines if line[0] == part.policy_slug and line[1] == part.unit]
        moving = [int(line[6]) for line in mine[1:-1] if not line[3].startswith("overage-")]
        assert int(mine[0][6]) + sum(moving) == int(mine[-1][6]), mine


def at_end(period: tuple[date, date]):
    return datetime.combine(period[1] + timedelta(days=1), time(), UTC) - timedelta(microseconds=1)


@both
@pytest.mark.usefixtures("toopixel_allows_overage")
def test_debts_count_in_the_opening_and_closing_balances(session):
    account, owner = new_client(session)
    balance_at_end = []  # what the ledger read at the end of January, February, March
    buy(session, account, "toopixel-36")
    first = ticket(session, account, owner)
    charge(session, first, 400, now=NOW + days(5))  # 40 credits: 4 owed
    balance_at_end.append(held(session, account, "toopixel-36", now=at_end(JANUARY)))
    second = ticket(session, account, owner, "toopixel-36", now=NOW + days(29))
    charge(session, second, 100, now=NOW + days(29))  # 3 February: 10 more owed
    balance_at_end.append(held(session, account, "toopixel-36", now=at_end(FEBRUARY)))
    fresh = buy(session, account, "toopixel-36", now=NOW + days(56))  # 2 March: pays the 14 first
    balance_at_end.append(held(session, account, "toopixel-36", now=at_end(MARCH)))
    assert balance_at_end == [-4, -14, 22]
    later = NOW + days(90)
    january, february, march = (statement(session, account, *when, now=later) for when in (JANUARY, FEBRUARY, MARCH))
    for report, closing in zip((january, february, march), balance_at_end, strict=True):
        [part] = report.sections
        assert part.closing == closing
        adds_up(report)
    [part] = january.sections
    assert (part.opening, part.total(part.grants), part.consumed, part.closing, part.closing_debt) == (0, 36, 36, -4, 4)
    assert [(m.units, m.ticket_id, m.at) for m in part.debts] == [(-4, first.id, NOW + days(5))]
    [part] = february.sections
    assert (part.opening, part.closing, [m.units for m in part.debts], part.grants) == (-4, -14, [-10], [])
    [part] = march.sections
    assert (part.opening, part.total(part.grants), part.consumed, part.closing) == (-14, 36, 14, 22)
    assert [(m.units, m.ticket_id) for m in part.debts_paid] == [(4, first.id), (10, second.id)]
    assert part.debts == [] and fresh.remaining == 22
    assert_verified(session, account)


@pytest.mark.usefixtures("toopixel_allows_overage")
def test_a_debt_that_grows_counts_from_each_charge(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 400, now=NOW + days(5))  # 4 owed in January
    charge(session, work, 500, now=NOW + days(30))  # 10 more in February
    assert sorted((o.status, o.units) for o in work.overages) == [("debt", 4), ("debt", 10)]
    [january] = statement(session, account, *JANUARY, now=NOW + days(60)).sections
    [february] = statement(session, account, *FEBRUARY, now=NOW + days(60)).sections
    assert (january.closing, february.opening, february.closing) == (-4, -4, -14)
    charge(session, work, 450, now=NOW + days(31))  # corrected: 5 owed back, from February's debt
    assert sorted((o.status, o.units) for o in work.overages) == [("debt", 4), ("debt", 5)]
    assert held(session, account, "toopixel-36", now=NOW + days(31)) == -9
    assert_verified(session, account)


@pytest.mark.usefixtures("toopixel_allows_overage")
def test_a_debt_on_an_account_without_lots_is_a_balance_of_its_own(session, runner):
    account, owner = new_client(session)
    work = ledger.open_ticket(session, account, owner, "Help", now=NOW, policy=pack(session, "toopixel-36").policy)
    charge(session, work, 30, now=NOW + days(1))
    [part] = statement(session, account, *JANUARY, now=NOW + days(40)).sections
    assert (part.policy_slug, part.opening, part.closing, [m.units for m in part.debts]) == (
        "toopixel-credits", 0, -3, [-3])
    result = runner.invoke(args=["ledger", "statement", str(account.id), "--from", "2026-01-01", "--to", "2026-01-31"])
    assert [line.split("\t") for line in result.output.splitlines()] == [
        ["toopixel-credits", "credit", "2026-01-01", "opening", "", "", "0", ""],
        ["toopixel-credits", "credit", "2026-01-06", "debt", "", str(work.id), "-3", "Help"],
        ["toopixel-credits", "credit", "2026-01-31", "closing", "", "", "-3", ""],
    ]


def test_an_account_without_any_balance_still_has_an_opening_and_a_closing(session, runner):
    account, _ = new_client(session)
    assert statement(session, account, *JANUARY, now=NOW).sections == []
    result = runner.invoke(args=["ledger", "statement", str(account.id), "--from", "2026-01-01", "--to", "2026-01-31"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["\t\t2026-01-01\topening\t\t\t0\t", "\t\t2026-01-31\tclosing\t\t\t0\t"]
    result = runner.invoke(args=["ledger", "statement", str(account.id), "--from", "2026-01-01", "--to",
                                 "2026-01-31", "--csv"])
    assert [row["movement"] for row in csv.DictReader(io.StringIO(result.output))] == ["opening", "closing"]


@both
@pytest.mark.parametrize("answer", ["approve", "decline"])
def test_overage_requests_are_listed_and_move_no_balance(session, runner, answer):
    account, owner = new_client(session)
    buy(session, account, "digitale-3h")
    work = ticket(session, account, owner)
    charge(session, work, 200, now=NOW + days(5))  # 20 min beyond the 3 h
    [request] = work.overages
    getattr(ledger, f"{answer}_overage")(session, request, by=owner, now=NOW + days(30))  # 4 February
    later = NOW + days(60)
    [part] = statement(session, account, *JANUARY, now=later).sections
    assert (part.opening, part.consumed, part.closing, part.debts) == (0, 180, 0, [])
    assert [(m.kind, m.units, m.ticket_id) for m in part.overages] == [("overage-pending", -20, work.id)]
    report = statement(session, account, *FEBRUARY, now=later)
    [part] = report.sections
    assert (part.opening, part.closing) == (0, 0)
    kind = "overage-approved" if answer == "approve" else "overage-declined"
    assert [(m.kind, m.units, m.at) for m in part.overages] == [(kind, -20, NOW + days(30))]
    adds_up(report)
    [line] = [line for line in rows(report) if line[3].startswith("overage-")]
    detail = "Help (21.67 EUR)" if answer == "approve" else "Help"
    assert line == ("digitale-minutes", "minute", "2026-02-04", kind, "", str(work.id), "-20", detail)
    # Asked and answered within one period: the answer only.
    [part] = statement(session, account, date(2026, 1, 1), date(2026, 2, 28), now=later).sections
    assert [m.kind for m in part.overages] == [kind]


def test_every_csv_row_has_its_date(session, runner):
    """Issue 12.8: the consumption rows had an empty date. A ticket's row is
    dated by its latest movement in the period."""
    account_id = two_months(session).id
    result = runner.invoke(args=["ledger", "statement", str(account_id), "--from", "2026-01-01", "--to",
                                 "2026-02-28", "--csv"])
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert all(date.fromisoformat(row["date"]) for row in table), table
    assert [(row["movement"], row["date"]) for row in table if row["movement"] == "consume"] == [
        ("consume", "2026-01-10"), ("consume", "2026-02-04")]


def test_command_line_statement(session, runner):
    account_id = two_months(session).id
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
def test_command_line_statement_refuses_bad_input_in_one_line(session, runner, args, message):
    new_client(session)
    result = runner.invoke(args=["ledger", "statement", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr


# --- The page -------------------------------------------------------------

def log_in(http, user_id: int) -> None:
    """A login of the user, as the login form opens one, in the client's cookie."""
    from billing.accounts.models import User
    from common.extensions import db
    from common.identity import sessions

    with http.application.app_context():
        token = sessions.start(db.session, db.session.get(User, user_id))
    with http.session_transaction() as cookie:
        cookie["_user_id"] = token
        cookie["_fresh"] = True


@pytest.fixture
def http(ledger_app):
    return ledger_app.test_client()


@pytest.fixture
def february(session):
    account = two_months(session)
    member = person(session, account, role="member")
    stranger = new_client(session)[1]
    return {"account": account.id, "member": member.id, "stranger": stranger.id, "staff": staff(session).id}


def page(account_id: int, **query) -> str:
    params = {"from": "2026-02-01", "to": "2026-02-28", **query}
    return f"/portal/accounts/{account_id}/statement?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_the_page_sends_anonymous_visitors_to_log_in(http, february):
    answer = http.get(page(february["account"]))
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


@pytest.mark.parametrize("who, status", [("member", 200), ("staff", 200), ("stranger", 404)])
def test_the_page_is_for_the_accounts_users_and_staff(http, february, who, status):
    log_in(http, february[who])
    answer = http.get(page(february["account"]))
    assert answer.status_code == status
    if status == 200:
        text = answer.get_data(as_text=True)
        assert "Opening balance" in text and "goodwill" in text and "29 credits" in text


def test_the_page_downloads_csv_and_refuses_bad_dates(http, february):
    log_in(http, february["member"])
    answer = http.get(page(february["account"], format="csv"))
    assert answer.mimetype == "text/csv"
    assert answer.get_data(as_text=True).splitlines()[-1] == "toopixel-credits,credit,2026-02-28,closing,,,29,"
    assert http.get(page(february["account"], to="yesterday")).status_code == 400
    assert http.get(page(february["account"], to="2026-01-01")).status_code == 400
    assert http.get(page(99999)).status_code == 404


def test_the_page_names_each_grant_and_dates_each_ticket(http, february):
    log_in(http, february["member"])
    text = http.get(page(february["account"], **{"from": "2026-01-01", "to": "2026-01-31"})).get_data(as_text=True)
    assert "Purchase · 36 credits" in text
    assert "purchase toopixel-36" not in text  # the slug is for the CSV, not for people
    tickets = re.findall(r"<tr><td>([^<]*)</td><td>Ticket #", text)
    assert tickets and all(day.strip() for day in tickets)


@pytest.mark.usefixtures("toopixel_allows_overage")
def test_the_page_shows_a_debt_and_a_negative_closing(http, session):
    account, owner = new_client(session)
    log_in(http, owner.id)  # before anything queues mail, which is sent as the login's request ends
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 400, now=NOW + days(5))
    text = http.get(page(account.id, **{"from": "2026-01-01", "to": "2026-01-31"})).get_data(as_text=True)
    assert f"Ticket #{work.id} · beyond the balance, owed" in text
    closing = re.search(r"Closing balance</th><td class=\"units\">([^<]*)</td>", text)
    assert closing and closing.group(1) == "−4 credits"
    buy(session, account, "toopixel-36", now=NOW + days(30))
    text = http.get(page(account.id)).get_data(as_text=True)
    assert f"Debt of ticket #{work.id} paid from the new credit" in text and "32 credits" in text


def test_the_page_of_an_account_without_credit_has_its_opening_and_closing(http, session):
    account, owner = new_client(session)
    log_in(http, owner.id)
    text = http.get(page(account.id)).get_data(as_text=True)
    assert "Opening balance" in text and "Closing balance" in text and "No credit on this account yet." in text


def test_the_page_lists_an_approved_overage_with_its_price(http, session):
    account, owner = new_client(session)
    log_in(http, owner.id)
    buy(session, account, "digitale-3h")
    work = ticket(session, account, owner)
    charge(session, work, 200, now=NOW + days(5))
    [request] = work.overages
    overage_bills.approve(session, request, by=owner, now=NOW + days(6))
    text = http.get(page(account.id, **{"from": "2026-01-01", "to": "2026-01-31"})).get_data(as_text=True)
    assert "20 min beyond the balance approved: billed €21.67." in text
    assert "Not drawn from the balance." in text


@both
@pytest.mark.usefixtures("toopixel_allows_overage")
def test_a_debt_reduced_by_a_correction_shows_in_the_month_of_the_correction(session, http):
    account, owner = new_client(session)
    log_in(http, owner.id)  # before anything queues mail, which is sent as the login's request ends
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 400, now=NOW + days(29))  # 3 February: 36 drawn, 4 owed
    charge(session, work, 380, now=NOW + days(64))  # 10 March: corrected, 2 of the debt taken off
    charge(session, work, 380, now=NOW + days(65))  # the same time again moves nothing
    buy(session, account, "toopixel-36", now=NOW + days(91))  # 6 April: pays the 2 still owed first
    april = (date(2026, 4, 1), date(2026, 4, 30))
    later = NOW + days(120)
    reports = [statement(session, account, *when, now=later) for when in (FEBRUARY, MARCH, april)]
    for report in reports:
        adds_up(report)
    february, march, april_ = (report.sections[0] for report in reports)
    assert (february.opening, february.consumed, february.closing, february.closing_debt) == (36, 36, -4, 4)
    assert [(m.kind, m.units, m.ticket_id, m.at) for m in february.debts] == [("debt", -4, work.id, NOW + days(29))]
    assert (march.opening, march.opening_debt, march.closing, march.closing_debt) == (-4, 4, -2, 2)
    assert [(m.kind, m.units, m.ticket_id, m.at) for m in march.debts_reduced] == [
        ("debt-reduced", 2, work.id, NOW + days(64))]
    assert (march.debts, march.debts_paid, march.consumption, march.grants) == ([], [], [], [])
    assert (april_.opening, april_.total(april_.grants), april_.consumed, april_.closing) == (-2, 36, 2, 34)
    assert [(m.units, m.ticket_id) for m in april_.debts_paid] == [(2, work.id)]
    assert (april_.debts_reduced, april_.opening_debt, april_.closing_debt) == ([], 2, 0)
    [march_line] = [line for line in rows(reports[1]) if line[3] == "debt-reduced"]
    assert march_line == ("toopixel-credits", "credit", "2026-03-10", "debt-reduced", "", str(work.id), "2", "Help")
    text = http.get(page(account.id, **{"from": "2026-03-01", "to": "2026-03-31"})).get_data(as_text=True)
    assert f"Debt reduced by a correction on ticket #{work.id}" in text
    closing = re.search(r"Closing balance</th><td class=\"units\">([^<]*)</td>", text)
    assert closing and closing.group(1) == "−2 credits"
    csv_text = http.get(page(account.id, **{"from": "2026-03-01", "to": "2026-03-31", "format": "csv"}))
    assert f"toopixel-credits,credit,2026-03-10,debt-reduced,,{work.id},2,Help" in csv_text.get_data(as_text=True)
    assert_verified(session, account)


@pytest.mark.usefixtures("toopixel_allows_overage")
def test_the_closing_of_each_month_is_the_balance_read_at_its_end(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    read = []
    charge(session, work, 450, now=NOW + days(29))  # 9 owed in February
    read.append(held(session, account, "toopixel-36", now=at_end(FEBRUARY)))
    charge(session, work, 300, now=NOW + days(64))  # corrected in March: the 9 owed and 6 drawn given back
    read.append(held(session, account, "toopixel-36", now=at_end(MARCH)))
    assert read == [-9, 6]
    later = NOW + days(120)
    closings = [statement(session, account, *when, now=later).sections[0].closing for when in (FEBRUARY, MARCH)]
    assert closings == read
    [march] = statement(session, account, *MARCH, now=later).sections
    assert [m.units for m in march.debts_reduced] == [9] and march.consumed == -6
    assert [o.status for o in work.overages] == ["withdrawn"]
    assert_verified(session, account)


# --- Formula injection (issue 13.9) -----------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"Click\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("subject", FORMULAS)
def test_no_csv_cell_starts_like_a_formula_but_numbers_stay_numbers(session, runner, http, subject):
    account = two_months(session)
    for opened in session.scalars(sa_select(Ticket).where(Ticket.account_id == account.id)):
        opened.subject = subject
    session.commit()
    log_in(http, staff(session).id)
    from_page = http.get(page(account.id, format="csv")).get_data(as_text=True)
    from_command = runner.invoke(args=["ledger", "statement", str(account.id), "--from", "2026-02-01", "--to",
                                       "2026-02-28", "--csv"]).output

    for written in (from_page, from_command):
        table = list(csv.DictReader(io.StringIO(written, newline="")))
        consumed = [row for row in table if row["movement"] == "consume"]
        assert consumed and all(row["detail"].startswith("'") and subject.strip() in row["detail"].strip()
                                for row in consumed), written
        assert [row["units"] for row in table] == ["33", "-6", "2", "29"]


def test_each_balance_names_itself_on_every_row_of_the_csv(session):
    """rows() writes each balance's rows through two nested functions (ruff's
    B023 flagged them when they were defined in the loop over the balances):
    every row, the overage request's priced line included, names its own
    balance, not the last one."""
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    buy(session, account, "digitale-3h")
    charge(session, ticket(session, account, owner, "toopixel-36"), 27, now=NOW + days(1))
    work = ticket(session, account, owner, "digitale-3h")
    charge(session, work, 200, now=NOW + days(5))  # 20 min beyond the 3 h
    overage_bills.approve(session, work.overages[0], by=owner, now=NOW + days(6))
    report = statement(session, account, *JANUARY, now=NOW + days(40))
    assert [line[:2] + line[3:4] for line in rows(report)] == [
        (part.policy_slug, part.unit, movement) for part in report.sections
        for movement in {"digitale-minutes": ["opening", "grant", "consume", "overage-approved", "closing"],
                         "toopixel-credits": ["opening", "grant", "consume", "closing"]}[part.policy_slug]]
    assert len(report.sections) == 2
