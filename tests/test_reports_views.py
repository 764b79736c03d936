"""The reports' pages (issue 15.2): admins only, the month's figures of
tests/reports_support.py on the page and in the CSV, charts drawn by the server."""

from __future__ import annotations

import csv
import io

import pytest
from reports_support import february

from common.extensions import db
from common.identity import accounts
from tests.access import ADMINS, EMAIL, World, covers, matrix
from tests.conftest import PASSWORD, login

URLS = ["/staff/reports/", "/staff/reports/sales", "/staff/reports/credit", "/staff/reports/time",
        "/staff/reports/overage", "/staff/reports/ratings", "/staff/reports/sales?month=2026-02&format=csv",
        "/staff/reports/credit?month=2026-02&format=csv", "/staff/reports/time?month=2026-02&format=csv",
        "/staff/reports/overage?month=2026-02&format=csv", "/staff/reports/ratings?month=2026-02&format=csv"]
PAGES = dict.fromkeys(URLS, ADMINS)
COVERS = covers(PAGES)


def make(app) -> dict:
    with app.app_context():
        february(db.session)
    return {}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("reports-access"), make)


test_who_may_open_each_page, _ = matrix(PAGES, {})


@pytest.fixture
def month(app, people) -> None:
    """Acme's people (the admin among them), an agent, and February's activity."""
    with app.app_context():
        accounts.create_staff(db.session, "Ann Agent", EMAIL["agent"], PASSWORD, role="agent")
        february(db.session)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_the_credit_page_shows_the_hand_computed_figures(client, month):
    login(client, EMAIL["admin"])
    page = text(client.get("/staff/reports/credit?month=2026-02"))
    for figure in ("€80.00", "€730.00", "€54.75", "€50.00", "€705.25", "€180.00", "€525.25"):
        assert figure in page, figure
    assert "<svg" in page and "Credit owed by month of expiry" in page


def test_the_sales_page_and_its_csv(client, month):
    login(client, EMAIL["admin"])
    page = text(client.get("/staff/reports/sales?month=2026-02"))
    assert "€730.00" in page and "€146.00" in page and "€876.00" in page and "<svg" in page
    rows = list(csv.reader(io.StringIO(text(client.get("/staff/reports/sales?month=2026-02&format=csv")))))
    assert rows[0] == ["month", "catalogue", "pack", "method", "currency", "orders", "net", "vat", "gross"]
    assert [row[3:] for row in rows[1:]] == [["card", "EUR", "1", "550.00", "110.00", "660.00"],
                                             ["transfer", "EUR", "1", "180.00", "36.00", "216.00"]]


def test_the_credit_csv_reconciles(client, month):
    login(client, EMAIL["admin"])
    rows = list(csv.reader(io.StringIO(text(client.get("/staff/reports/credit?month=2026-02&format=csv")))))
    owed = {row[3]: row[5] for row in rows if row[0] == "owed"}
    assert owed == {"opening": "80.00", "sales": "730.00", "consumption": "54.75", "breakage": "50.00",
                    "refunds": "0.00", "removals": "0.00", "closing": "705.25"}
    assert [row[1:] for row in rows if row[0] == "expires"] == [["2026-05", "EUR", "minute", "180", "180.00"],
                                                                ["2027-02", "EUR", "minute", "573", "525.25"]]


def test_a_month_badly_written_is_said_beside_the_field(client, month):
    login(client, EMAIL["admin"])
    response = client.get("/staff/reports/sales?month=February")
    assert response.status_code == 400 and "A month is written YYYY-MM" in text(response)


def test_time_and_ratings_pages(client, month):
    login(client, EMAIL["admin"])
    page = text(client.get("/staff/reports/time?month=2026-02"))
    assert "Agnès Agent" in page and "€32.21" in page and "Beta Bakery" in page
    assert "E-mail exchanges and video briefs" in page  # the kind by its name, not its slug
    page = text(client.get("/staff/reports/ratings?month=2026-02"))
    assert "<svg" in page and "4.5" in page
    rows = list(csv.reader(io.StringIO(text(client.get("/staff/reports/ratings?month=2026-02&format=csv")))))
    assert rows[-1] == ["2026-02", "2", "4.50"]
    page = text(client.get("/staff/reports/overage?month=2026-02"))
    assert "€32.50" in page and "€39.00" in page


def test_the_hub_shows_reports_to_admins_only(app, client, month):
    login(client, EMAIL["admin"])
    assert "/staff/reports/" in text(client.get("/staff/"))
    agent = app.test_client()
    login(agent, EMAIL["agent"])
    assert "/staff/reports/" not in text(agent.get("/staff/"))


def test_the_reports_page_itself_shows_the_months_sales_and_the_credit_owed(client, month):
    # The office manager opening Reports sees the two figures asked most
    # often without picking a report first: February's hand-computed ones.
    login(client, EMAIL["admin"])
    page = text(client.get("/staff/reports/?month=2026-02"))
    assert "Paid in February 2026: €876.00 incl. VAT" in page
    assert "Owed at the end of February 2026: €705.25" in page
    assert "No sale in January 2020." in text(client.get("/staff/reports/?month=2020-01"))


def test_the_credit_owed_at_any_day(client, month):
    login(client, EMAIL["admin"])
    # On 9 February, before Alpha's first pack expired: 50.00 + 550.00 - 6.42.
    page = text(client.get("/staff/reports/credit?month=2026-02&at=2026-02-09"))
    assert "Owed at the end of Feb 9, 2026: €593.58." in page
    assert client.get("/staff/reports/credit?month=2026-02&at=9 Feb").status_code == 400
