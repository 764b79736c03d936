"""Statements: the function, `flask ledger statement` and the page."""

from __future__ import annotations

import csv
import re
import io
from datetime import date

import pytest

from billing import ledger
from billing.statement import statement
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW, assert_verified, both, buy, charge, days, key, ledger_app, new_client, person, session, staff, ticket,
    two_months,
)

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
    with http.session_transaction() as cookie:
        cookie["_user_id"] = str(user_id)
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


@pytest.mark.parametrize("who, status", [("member", 200), ("staff", 200), ("stranger", 403)])
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
