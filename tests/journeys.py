"""What the browser journeys share: the ways a person goes through Forfait.

A journey types one address, the site's ("/"), and follows a link it read in
a mail; every other page it reaches by clicking what a person clicks from
where they are (the navigation, a card, a row, a button). The helpers here are
those clicks, found by role and label as a person finds them, and each waits
for what a person would see before going on, never for time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.conftest import PASSWORD
from tests.smtp import Inbox

# How long a journey waits for what a person would see before calling it
# missing. Playwright's 5 s is short on this 2-core machine when the suite
# runs in parallel beside other work: confirming a transfer (an invoice PDF)
# then took longer, and the confirmation was reported missing while it came.
expect.set_options(timeout=15_000)


def start(page: Page, url: str) -> None:
    """Type the site's address: the one page a journey does not click to."""
    page.goto(url + "/")
    expect(page.locator("header.site-header")).to_be_visible()


def other_site(page: Page, address: str) -> None:
    """Type the address of another site (an attacker's page, Stripe's): never one of ours."""
    ours, theirs = urlsplit(page.url), urlsplit(address)
    assert (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc), f"{address} is ours: click to it"
    page.goto(address)


def one_page(page: Page) -> None:
    """The page is one page: a single site header and a single <main>, the
    body's own. A page swapped into an element of another would show two."""
    nested = f"{page.url} shows a page inside the page"
    expect(page.locator("header.site-header"), nested).to_have_count(1)
    expect(page.locator("main"), nested).to_have_count(1)
    expect(page.locator("body > main"), nested).to_have_count(1)


def heading(page: Page, text: str | re.Pattern[str]) -> None:
    """Wait for the page whose title (h1) contains ``text``: the page a person
    sees, once it is loaded. The title shows while the page is still parsed,
    before htmx (a deferred script) wires up its fields: typing into one then
    sent nothing, and a desk journey waited for a preview never asked for."""
    expect(page.locator("h1", has_text=text)).to_be_visible()
    page.wait_for_load_state("load")


def nav(page: Page, name: str) -> None:
    """Click a link of the site's navigation bar (Packs, My account, Ticket desk, ...)
    and wait for its page: the address bar shows the link's address."""
    link = page.locator("header.site-header").get_by_role("link", name=name, exact=True)
    click_to(page, link, link.get_attribute("href"))


def click_to(page: Page, link: Locator, path: str) -> None:
    """Click ``link`` and wait for its page: the address bar shows ``path``,
    and the page is loaded (see ``heading``)."""
    link.click()
    expect(page).to_have_url(re.compile(r"^https?://[^/]+" + re.escape(path) + r"(\?.*)?$"))
    page.wait_for_load_state("load")


def log_in(page: Page, url: str, email: str, password: str = PASSWORD) -> None:
    """From the home page, click "Log in", give the email and the password."""
    start(page, url)
    nav(page, "Log in")
    fill_log_in(page, email, password)


def fill_log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """On the login form (wherever it was reached from): log in, and see the next page."""
    heading(page, "Log in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    # The site in the person's own language from here: the way out, in any of them.
    expect(page.locator("header.site-header form[action='/logout'] button")).to_be_visible()


def staff_page(new_context: Callable[[], BrowserContext], url: str, email: str = "staff@example.com") -> Page:
    """A staff member logged in, in a browser of their own: ``new_context`` is
    pytest-playwright's fixture, which closes it after the test (an open one
    would go on polling the server through the next tests)."""
    page = new_context().new_page()
    log_in(page, url, email)
    return page


def choose_pack(page: Page, name: str | re.Pattern[str], details: str = "See the details") -> None:
    """On the catalogue (the home page, or "Packs"), open a pack's page from its card."""
    page.get_by_role("article", name=name, exact=True).get_by_role("link", name=details).click()
    heading(page, name)
    one_page(page)


def to_the_trial(page: Page) -> None:
    """On the trial pack's page, follow "Start the free trial" to the trial's own
    page (same title): wait for its words, since its form's button bears the same name."""
    page.get_by_role("button", name="Start the free trial").click()
    expect(page.get_by_text("Free, without payment details")).to_be_visible()


def sign_up_on_checkout(page: Page) -> None:
    """A newcomer fills in the checkout's account fields: Nora Nova of Bistro Nova."""
    page.get_by_label("Organisation").fill("Bistro Nova")
    page.get_by_label("Your name").fill("Nora Nova")
    page.get_by_label("Email").fill("nora@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)


def confirm_and_back_to_checkout(page: Page, inbox: Inbox, pack: str, email: str = "nora@example.com") -> None:
    """The newcomer sends the checkout's account fields ("Continue"), is told
    to look at the mail, opens its link, and is back on the checkout, logged
    in, as they filled it in: nothing is ordered before the address is theirs."""
    page.get_by_role("button", name="Continue").click()
    heading(page, "Check your email")
    expect(page.get_by_text(f"We have sent a message to {email}.")).to_be_visible()
    follow_mail_link(page, inbox, email, "/verify/")
    expect(page.get_by_text(f"Thank you: {email} is verified.")).to_be_visible()
    heading(page, f"Order: {pack}")
    one_page(page)


def htmx_settled(page: Page) -> None:
    """No htmx request in flight and nothing swapped in still settling: what
    is shown is what the server last said."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")).to_have_count(0)


# ------------------------------------------------------------------ client

def open_ticket(page: Page, subject: str, description: str = "The contact form shows an error.",
                balance: str | None = None) -> None:
    """From a page that offers "Open a ticket" (the dashboard, the ticket list), open one."""
    page.get_by_role("link", name="Open a ticket").first.click()
    heading(page, "Open a ticket")
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Description").fill(description)
    if balance is not None:
        page.get_by_label("Draw from").select_option(label=balance_option(page, balance))
    page.get_by_role("button", name="Open the ticket").click()
    heading(page, subject)


def balance_option(page: Page, starts_with: str) -> str:
    """The full label of the new ticket form's balance that starts with ``starts_with``."""
    options = page.get_by_label("Draw from").locator("option").all_inner_texts()
    matching = [option for option in options if option.startswith(starts_with)]
    assert matching, f"no balance starting with {starts_with!r} in {options}"
    return matching[0]


# ------------------------------------------------------------------ staff

def open_from_desk(page: Page, subject: str) -> None:
    """Staff go to the ticket desk and open a ticket from the queue: one page, the ticket's."""
    nav(page, "Ticket desk")
    heading(page, "Ticket desk")
    page.get_by_role("link", name=subject).click()
    heading(page, subject)
    one_page(page)


def search_payments(page: Page, text: str) -> None:
    """On "Payments to confirm", search, and wait for the answer (its address
    carries the search): the unsearched list holds the same rows, and a
    Confirm pressed there is overtaken by the search's page arriving after."""
    page.get_by_role("searchbox", name="Search").fill(text)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"[?&]q=[^&]"))


def type_minutes(page: Page, minutes: int) -> None:
    page.get_by_label("Minutes").fill(str(minutes))


def log_time(page: Page, minutes: int, expected_preview: str) -> None:
    """Type the minutes, read the charge the desk previews, save."""
    type_minutes(page, minutes)
    # The preview comes from the server as staff type, before anything is saved.
    expect(page.locator("#time-preview")).to_contain_text(expected_preview)
    page.get_by_role("button", name="Save time").click()
    expect(page.locator(".flash-success")).to_contain_text(f"{minutes} min logged")


# ------------------------------------------------------------------ mail

def mail_link(inbox: Inbox, to: str, path: str, timeout: float = 30.0) -> str:
    """The link to ``path`` in the last mail the loopback SMTP server received
    for ``to``, once it has arrived."""
    deadline = time.monotonic() + timeout
    while not any(path in message.get_body(preferencelist=("plain",)).get_content()
                  for message in inbox.to(to)[-1:]):
        assert time.monotonic() < deadline, f"no mail to {to} with a link to {path}"
        time.sleep(0.05)
    return inbox.last_link(to, path)


def follow_mail_link(page: Page, inbox: Inbox, to: str, path: str) -> None:
    """Open the mail to ``to`` and click its link to ``path``."""
    page.goto(mail_link(inbox, to, path))


def screenshots(page: Page, name: str) -> None:
    """The page at a desktop's width and a phone's (``NAME-1280.png``,
    ``NAME-390.png``), when FORFAIT_SCREENSHOTS names a folder."""
    folder = os.environ.get("FORFAIT_SCREENSHOTS")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    size = page.viewport_size
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)
    if size:
        page.set_viewport_size(size)
