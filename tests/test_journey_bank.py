"""Browser journey (issue 15.1's "Done when"): staff upload a camt.053
holding an exact match, a partial payment, an unknown reference and a
duplicate line; the exact one is confirmed (the client's balance shows the
credit), the partial one waits with its remainder, the unknown one is
assigned by hand, and importing the file again changes nothing. Screenshots
at 1280 and 390 px go to FORFAIT_SCREENSHOTS when it names a folder."""

from __future__ import annotations

import pytest
from bank_support import camt
from checkout_support import EUR_IBAN, place
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.bank.models import BankLine
from billing.catalogue.offers import load_preset
from billing.orders.models import Invoice, Payment
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import heading, log_in, nav, one_page, screenshots, staff_page

pytestmark = pytest.mark.browser


def written(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model)) for model in (BankLine, Payment,
                                                                                               Invoice))


def euros(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def test_staff_import_a_camt053_then_assign_the_unknown_line_and_a_second_import_changes_nothing(
        live_server, page: Page, new_context, tmp_path):
    url, app = live_server
    app.config["PROVIDER_IBAN"] = EUR_IBAN
    with app.app_context():
        load_preset(db.session, "demo")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
        owner = accounts.register(db.session, "Atelier Lumière", "Olive Owner", "olive@example.com", PASSWORD,
                                  "en", "FR")
        exact, _ = place(db.session, owner, "demo-tickets-10")
        partial, _ = place(db.session, owner, "demo-tickets-10")
        by_hand, _ = place(db.session, owner, "demo-tickets-10")
        total = exact.total
        ids = exact.id, partial.id, by_hand.id
        exact_ref, partial_ref = exact.reference, partial.reference
    statement = tmp_path / "camt053-2026-01-04.xml"
    statement.write_bytes(camt([
        {"amount": euros(total), "ref": "ZKB-0001", "structured": exact_ref, "payer": "Atelier Lumiere"},
        {"amount": "200.00", "ref": "ZKB-0002", "text": f"Acompte {partial_ref.lower()}", "payer": "Atelier Lumiere"},
        {"amount": euros(total), "ref": "ZKB-0003", "text": "RF12 3456 support pack", "payer": "M. Martin"},
        {"amount": euros(total), "ref": "ZKB-0001", "structured": exact_ref, "payer": "Atelier Lumiere"},
    ]))
    log_in(page, url, "olive@example.com")
    expect(page.locator("#balance")).not_to_contain_text("10 tickets")

    staff = staff_page(new_context, url)
    nav(staff, "Payments to confirm")
    staff.get_by_role("link", name="Import a bank statement").click()
    heading(staff, "Bank statements")
    staff.get_by_label("Statement file").set_input_files(str(statement))
    staff.get_by_role("button", name="Import the statement").click()

    heading(staff, "Statement camt053-2026-01-04.xml")
    rows = staff.locator("#bank-lines tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("confirmed")
    expect(rows.nth(0)).to_contain_text(f"#{ids[0]}")
    expect(rows.nth(1)).to_contain_text("partial payment")
    expect(rows.nth(1)).to_contain_text(f"€{euros(total - 20000)} still awaited")
    expect(rows.nth(2)).to_contain_text("no match")
    expect(rows.nth(3)).to_contain_text("already imported")
    screenshots(staff, "bank-import-result")

    # The unknown reference waits; staff, who know the payer, assign it by the order's number.
    staff.get_by_role("link", name="Unmatched bank lines").first.click()
    heading(staff, "Unmatched bank lines")
    line = staff.locator("article.bank-line")
    expect(line).to_have_count(1)
    expect(line).to_contain_text("M. Martin")
    screenshots(staff, "bank-unmatched")
    expect(staff.locator("#bank-waiting-count")).to_have_text("1 bank line waits for you to assign or discard it.")
    address = staff.url
    line.get_by_label("Order number").fill(str(ids[2]))
    line.get_by_role("button", name="Assign to this order").click()
    # Answered in place (htmx): the line stays where it was and says what it became, the count follows;
    # a page loaded again would no longer list it.
    expect(line).to_contain_text(f"Order {ids[2]} is paid: credited and invoiced.")
    expect(line).to_contain_text("confirmed")
    expect(line.get_by_role("button", name="Assign to this order")).to_have_count(0)
    expect(staff.locator("#bank-waiting-count")).to_have_text("No bank line waits for you.")
    assert staff.url == address
    one_page(staff)
    screenshots(staff, "bank-assigned-in-place")

    # The partial one waits on the payments page with its remainder.
    nav(staff, "Payments to confirm")
    waiting = staff.locator(f"#order-{ids[1]}")
    expect(waiting).to_contain_text(f"€{euros(total - 20000)}")
    expect(waiting).to_contain_text(f"of €{euros(total)}")

    # The client sees the credit of the two paid orders.
    page.get_by_role("link", name="My account").click()
    expect(page.locator("#balance")).to_contain_text("20 tickets")

    # The same file again: every line already imported, nothing credited twice.
    before = written(app)
    nav(staff, "Payments to confirm")
    staff.get_by_role("link", name="Import a bank statement").click()
    staff.get_by_label("Statement file").set_input_files(str(statement))
    staff.get_by_role("button", name="Import the statement").click()
    heading(staff, "Statement camt053-2026-01-04.xml")
    expect(staff.locator("#bank-lines tbody tr").filter(has_text="already imported")).to_have_count(4)
    assert written(app) == before
    # The same page in French, for the eye (FORFAIT_SCREENSHOTS).
    staff.get_by_role("button", name="Français").click()
    heading(staff, "Relevé camt053-2026-01-04.xml")
    expect(staff.locator("#bank-lines tbody tr").filter(has_text="déjà importée")).to_have_count(4)
    screenshots(staff, "bank-import-again-fr")
    page.get_by_role("link", name="My account").click()
    expect(page.locator("#balance")).to_contain_text("20 tickets")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User).where(User.is_staff)) == 1


def test_staff_make_a_csv_mapping_rename_it_and_delete_it(live_server, page: Page):
    url, app = live_server
    with app.app_context():
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    log_in(page, url, "staff@example.com")
    nav(page, "Payments to confirm")
    page.get_by_role("link", name="Import a bank statement").click()
    page.get_by_role("link", name="CSV column mappings, one per bank").click()
    heading(page, "CSV column mappings")
    page.get_by_label("Bank", exact=True).fill("Sparkasse")
    page.get_by_label("Date column").fill("Datum")
    page.get_by_label("Amount column (signed)").fill("Betrag")
    page.get_by_label("Text column").fill("Verwendungszweck")
    page.get_by_role("button", name="Save the mapping").click()
    expect(page.get_by_text("The mapping Sparkasse is saved")).to_be_visible()

    page.get_by_role("link", name="CSV column mappings, one per bank").click()
    saved = page.locator("#bank-mappings tbody tr")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text("Datum · Betrag · Verwendungszweck")
    page.get_by_role("link", name="Change Sparkasse").click()
    expect(page.get_by_role("heading", name="Change Sparkasse")).to_be_visible()
    page.get_by_label("Bank", exact=True).fill("Sparkasse Köln")
    page.get_by_role("button", name="Save the mapping").click()
    expect(page.get_by_text("The mapping Sparkasse Köln is saved")).to_be_visible()
    expect(page.get_by_role("combobox", name="CSV mapping")).to_contain_text("Sparkasse Köln")

    page.get_by_role("link", name="CSV column mappings, one per bank").click()
    expect(saved).to_contain_text("Sparkasse Köln")
    screenshots(page, "bank-mappings")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete the mapping Sparkasse Köln").click()
    expect(page.get_by_text("The mapping Sparkasse Köln is deleted.")).to_be_visible()
    expect(saved).to_have_count(0)
    one_page(page)
