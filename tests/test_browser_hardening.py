"""What the browser is told to trust (issue 13.3): every HTML page carries
its Content-Security-Policy and the other headers; another origin cannot
frame a page; the main pages run under the policy without one violation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, login
from tests.journeys import choose_pack, heading, log_in, nav, other_site, start

# ---------------------------------------------------------------- the headers


def assert_guarded(response, path: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {part.strip().split(" ")[0]: part.strip() for part in csp.split(";") if part.strip()}
    assert "frame-ancestors 'none'" in csp, path
    assert directives.get("script-src") == "script-src 'self'", (path, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (path, csp)
    assert response.headers.get("X-Frame-Options") == "DENY", path
    assert response.headers.get("X-Content-Type-Options") == "nosniff", path
    assert response.headers.get("Referrer-Policy") == "same-origin", path
    assert "camera=()" in response.headers.get("Permissions-Policy", ""), path


def get_pages(app) -> list[str]:
    """Every GET route that takes no argument."""
    return sorted({str(rule.rule) for rule in app.url_map.iter_rules()
                   if "GET" in rule.methods and not rule.arguments and rule.endpoint != "static"})


@pytest.mark.parametrize("role", [None, "owner", "staff"])
def test_every_html_page_carries_the_policy_and_the_headers(app, client, people, role):
    if role:
        login(client, people[role])
    seen = 0
    for path in [*get_pages(app), "/no/such/page"]:
        response = client.get(path)
        if response.mimetype == "text/html":
            assert_guarded(response, path)
            seen += 1
    assert seen > 10


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/").headers
    assert client.get("/", base_url="https://localhost").headers["Strict-Transport-Security"].startswith("max-age=")


# ---------------------------------------------------------------- in Chromium

def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.fixture
def client_account(live_server) -> str:
    _url, app = live_server
    with app.app_context():
        load_preset(db.session, "demo")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "FR")
        pack = db.session.scalar(db.select(Pack).where(Pack.slug == "demo-hours-5"))
        ledger.grant(db.session, owner.account, pack, key="grant", now=_now())
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return "owner@example.com"


@pytest.fixture
def attacker(live_server) -> Iterator[str]:
    """Another origin of the same site (127.0.0.1 on another port) whose page
    frames the client's subscription page, as the probe's did."""
    url, _app = live_server
    target = url + "/portal/subscription"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            body = (f'<!doctype html><title>Win a prize</title><h1>Click the button</h1>'
                    f'<iframe id="victim" src="{target}" width="800" height="600"></iframe>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_another_origin_cannot_frame_a_page_of_the_portal(page: Page, live_server, client_account, attacker):
    url, _app = live_server
    log_in(page, url, client_account)
    page.get_by_role("link", name="Subscription", exact=True).click()
    heading(page, "Subscription")  # the page itself shows to its own origin

    def refusal(message) -> bool:
        return "frame-ancestors" in message.text or "X-Frame-Options" in message.text

    with page.expect_console_message(refusal):
        other_site(page, attacker)
    expect(page.locator("h1", has_text="Click the button")).to_be_visible()
    # Chromium replaces a refused frame by its own error page: nothing of ours in it.
    frame = page.frame_locator("#victim")
    assert frame.locator("header.site-header").count() == 0, "the portal page was framed by another origin"


VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));
"""


def test_the_main_pages_run_under_the_policy_without_a_violation(page: Page, live_server, client_account):
    url, _app = live_server
    page.add_init_script(VIOLATIONS)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    visited = []

    def check(path: str) -> None:
        visited.append(path)
        assert page.evaluate("window.__violations") == [], (path, page.evaluate("window.__violations"))

    start(page, url)
    check("/")
    choose_pack(page, "5 hours")
    check("/packs/demo-hours-5")
    nav(page, "Estimator")
    page.get_by_label("Minutes of work").fill("45")
    # htmx's trigger still works without eval: the result follows the typing.
    expect(page.locator("#estimate-result")).to_contain_text("45")
    check("/estimate")
    log_in(page, url, client_account)
    check("/portal/")
    page.get_by_role("link", name="Open a ticket").first.click()
    heading(page, "Open a ticket")
    check("/portal/tickets/new")
    nav(page, "Orders")
    check("/portal/orders")
    nav(page, "Packs")
    choose_pack(page, "5 hours")
    page.get_by_role("button", name="Order this pack", exact=True).click()
    heading(page, "Order: 5 hours")
    check("/checkout/demo-hours-5")
    assert not [text for text in errors if "Content Security Policy" in text or "htmx" in text.lower()], errors
