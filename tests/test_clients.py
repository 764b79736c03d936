"""The staff's clients: the list of accounts (search, sort, pages) and one
account's page, with its invoicing details corrected by staff."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from babel.dates import format_date
from checkout_support import EUR_IBAN, confirm, place
from sqlalchemy import func, select

from billing.accounts import directory
from billing.accounts.models import Account, User
from billing.audit import AuditEntry
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Lot, Overage
from billing.orders.models import Invoice, Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, login, post_form
from tests.test_security import snapshot

NOW = datetime.now(UTC)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def app_config() -> dict:
    return {"PROVIDER_IBAN": EUR_IBAN}


def grant(session, account: Account, slug: str, key: str, *, at: datetime = NOW) -> Lot:
    pack = session.scalar(select(Pack).where(Pack.slug == slug))
    return ledger.grant(session, account, pack, key=key, now=at).entries[0].lot


@pytest.fixture
def clients(app, people) -> dict[str, int]:
    """Acme (owner, member): 36 Too Pixel credits, a ticket, a paid order
    with its invoice; Zürich Support AG (Swiss) with 150 credits expiring
    soon; Dormant SARL with nothing; Owing SL with a debt; staff."""
    with app.app_context():
        session = db.session
        for preset in ("toopixel", "demo"):
            load_preset(session, preset)
        owner = session.scalar(select(User).where(User.email == people["owner"]))
        acme = owner.client_account
        grant(session, acme, "toopixel-36", "acme", at=NOW - timedelta(days=40))
        ticket = desk.open_ticket(session, acme, owner, "Printer jammed", "help", now=NOW - timedelta(days=3),
                                  policy=session.scalar(select(Pack).where(Pack.slug == "toopixel-36")).policy)
        order, payment = place(session, owner)
        confirm(session, payment)
        swiss = accounts.register(session, "Zürich Support AG", "Ueli Keller", "ueli@zurich.example", PASSWORD,
                                  "en", "CH")
        lot = grant(session, swiss.client_account, "toopixel-150", "swiss", at=NOW - timedelta(days=700))
        dormant = accounts.register(session, "Dormant SARL", "Denise Dort", "denise@dormant.example", PASSWORD,
                                    "fr", "FR")
        owing = accounts.register(session, "Owing SL", "Olga Debe", "olga@owing.example", PASSWORD, "es", "ES")
        policy = session.scalar(select(Pack).where(Pack.slug == "toopixel-36")).policy
        urgent = Ticket(account_id=owing.account_id, opened_by_id=owing.id, policy_id=policy.id, unit="credit",
                        subject="Urgent", created_at=NOW)
        session.add(urgent)
        session.flush()
        session.add(Overage(account_id=owing.account_id, ticket_id=urgent.id, status="debt", units=5, settled=0,
                            created_at=NOW))
        session.commit()
        return {"acme": acme.id, "swiss": swiss.account_id, "dormant": dormant.account_id,
                "owing": owing.account_id, "ticket": ticket.id, "order": order.id,
                "reference": order.reference, "lot_expires": lot.expires_at is not None}


def names(page: str) -> list[str]:
    return re.findall(r'<a href="/staff/clients/\d+">([^<]+)</a>', page)


def test_staff_reach_an_account_from_the_hub(client, people, clients):
    login(client, people["staff"])
    hub = text(client.get("/staff/"))
    assert 'href="/staff/clients"' in hub
    listing = text(client.get("/staff/clients"))
    assert names(listing) == ["Acme", "Dormant SARL", "Owing SL", "Zürich Support AG"]
    assert "4 accounts." in listing
    page = client.get(f"/staff/clients/{clients['acme']}")
    assert page.status_code == 200 and "<h1>Acme</h1>" in text(page)


@pytest.mark.parametrize("query, found", [
    ("acme", ["Acme"]),                                     # the name, any case
    ("max member", ["Acme"]),                               # a person's name
    ("UELI@zurich", ["Zürich Support AG"]),                 # an email
    ("switz", ["Zürich Support AG"]),                       # a country's name
    ("es", ["Owing SL"]),                                   # a country's code
    ("nobody", []),
    ("100%", []),                                           # LIKE's wildcards are literal
])
def test_the_list_searches_names_people_emails_and_countries(client, people, clients, query, found):
    login(client, people["staff"])
    page = text(client.get("/staff/clients", query_string={"q": query}))
    assert names(page) == found
    if not found:
        assert "No account matches." in page


def test_the_list_finds_an_account_by_its_payment_reference_and_id(client, people, clients):
    login(client, people["staff"])
    reference = clients["reference"]
    spaced = " ".join(reference[i:i + 4] for i in range(0, len(reference), 4)).lower()
    assert names(text(client.get("/staff/clients", query_string={"q": spaced}))) == ["Acme"]
    assert names(text(client.get("/staff/clients", query_string={"q": f"#{clients['swiss']}"}))) == [
        "Zürich Support AG"]


def test_a_country_is_found_by_its_name_in_the_readers_language(client, people, clients):
    login(client, people["staff"])
    post_form(client, "/language", {"lang": "fr"})
    page = text(client.get("/staff/clients", query_string={"q": "suisse"}))
    assert names(page) == ["Zürich Support AG"] and "Suisse" in page


def test_typing_in_the_search_swaps_the_results_only(client, people, clients):
    login(client, people["staff"])
    page = text(client.get("/staff/clients"))
    assert 'hx-get="/staff/clients"' in page and 'hx-target="#client-results"' in page
    assert '<form method="get" action="/staff/clients"' in page  # works without JavaScript
    fragment = client.get("/staff/clients?q=zur", headers={"HX-Request": "true"})
    assert text(fragment).startswith('<div id="client-results">') and "<html" not in text(fragment)
    assert names(text(fragment)) == ["Zürich Support AG"]
    assert fragment.headers["Vary"] == "Cookie, HX-Request" or "HX-Request" in fragment.headers["Vary"]


def test_each_row_says_balance_debt_expiry_and_activity(client, people, clients):
    login(client, people["staff"])
    page = text(client.get("/staff/clients?q=acme"))
    # 36 credits; the demo order's 5 hours, paid on checkout_support's day, have expired.
    assert "36 credits" in page and "5 h" not in page
    owing = text(client.get("/staff/clients?q=owing"))
    assert "5 credits" in owing and "nothing" in owing


# Balances compare as the work they pay for: Zürich's 150 credits are 25 h,
# Acme's 36 credits 6 h.
@pytest.mark.parametrize("sort, first, direction", [
    ("balance", "Zürich Support AG", "descending"),
    ("debt", "Owing SL", "descending"),
    ("expiry", "Zürich Support AG", "ascending"),
    ("activity", "Owing SL", "descending"),
])
def test_the_list_sorts_by_each_column(client, people, clients, sort, first, direction):
    login(client, people["staff"])
    page = text(client.get("/staff/clients", query_string={"sort": sort}))
    assert names(page)[0] == first and f'aria-sort="{direction}"' in page
    # The column's heading turns the order round.
    turn = re.search(rf'href="(/staff/clients\?sort={sort}&amp;order=\w+)"', page)
    assert turn is not None
    reverse = text(client.get(turn.group(1).replace("&amp;", "&")))
    assert names(reverse)[0] != first and f'aria-sort="{direction}"' not in reverse


@BOTH
def test_the_directory_pages_and_sorts_on_each_engine(app, people, clients):
    with app.app_context():
        session = db.session()
        first = directory.clients(session, now=NOW, per_page=3)
        assert (first.total, first.pages, [r.name for r in first.rows]) == (
            4, 2, ["Acme", "Dormant SARL", "Owing SL"])
        last = directory.clients(session, now=NOW, per_page=3, page=99)
        assert last.page == 2 and [r.name for r in last.rows] == ["Zürich Support AG"]
        by = {sort: [r.name for r in directory.clients(session, now=NOW, sort=sort).rows]
              for sort in directory.SORTS}
        assert by["balance"][:2] == ["Zürich Support AG", "Acme"] and by["debt"][0] == "Owing SL"
        assert by["expiry"][0] == "Zürich Support AG" and by["expiry"][-1] in ("Dormant SARL", "Owing SL")
        assert by["activity"][0] == "Owing SL" and by["activity"][-1] == "Dormant SARL"
        acme = directory.clients(session, now=NOW, query="acme").rows[0]
        assert (acme.people, acme.requests, acme.last_activity is not None) == (2, 0, True)
        assert {(h.unit, h.units) for h in acme.holdings} == {("credit", 36)}
        seen = directory.overview(session, session.get(Account, clients["acme"]), now=NOW)
        assert [p.user.name for p in seen.people] == ["Olive Owner", "Max Member"]
        assert [(b.units, b.unit) for _policy, b in seen.balances] == [(36, "credit")]
        assert len(seen.lots) == 2 and len(seen.orders) == 1 and len(seen.invoices) == 1
        assert [t.subject for t in seen.tickets] == ["Printer jammed"]


def test_the_account_page_shows_people_lots_orders_invoices_tickets_and_statement(app, client, people, clients):
    login(app.test_client(), people["owner"])
    login(client, people["staff"])
    page = text(client.get(f"/staff/clients/{clients['acme']}"))
    today = format_date(datetime.now(UTC), format="medium", locale="en")
    with app.app_context():
        invoice = db.session.scalar(select(Invoice).where(Invoice.account_id == clients["acme"]))
        order = db.session.get(Order, clients["order"])
        assert invoice is not None and order.status == "paid"
        number = invoice.number
    people_rows = page[page.index('id="people"'):page.index('id="lots"')]
    assert re.search(rf"Olive Owner.*?Owner</td>.*?not yet</td>\s*<td[^>]*>{today}</td>", people_rows, re.S)
    assert re.search(r"Max Member.*?Member</td>.*?not yet</td>\s*<td[^>]*>never</td>", people_rows, re.S)
    assert "expired on" in page  # the demo lot
    for part in ("owner@example.com", "36 credits", f'href="/portal/orders/{clients["order"]}"', number,
                 f'href="/desk/tickets/{clients["ticket"]}"', "Printer jammed", "Opening balance",
                 "Closing balance", 'id="invoicing"', 'id="account-actions"'):
        assert part in page, part


def test_staff_correct_the_invoicing_details(app, client, people, clients):
    login(client, people["staff"])
    path = f"/staff/clients/{clients['acme']}/invoicing"
    response = post_form(client, path, {"address": "1 rue de la Paix\n75002 Paris", "vat_id": "40303265045"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/staff/clients/{clients['acme']}#invoicing"
    with app.app_context():
        acme = db.session.get(Account, clients["acme"])
        assert (acme.address, acme.vat_id) == ("1 rue de la Paix\n75002 Paris", "FR40303265045")
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "account.invoicing"))
        staff = db.session.scalar(select(User).where(User.email == people["staff"]))
        assert (entry.actor_id, entry.subject_kind, entry.subject_id) == (staff.id, "account", clients["acme"])
        assert entry.before == {"address": "", "vat_id": ""}
        assert entry.after == {"address": "1 rue de la Paix\n75002 Paris", "vat_id": "FR40303265045"}
    page = text(client.get(f"/staff/clients/{clients['acme']}"))
    assert "FR40303265045" in page and "The invoicing details of Acme are saved" in page
    # Staff read the form's help too: it names the invoice's number, not "your" number.
    assert "your intra-community" not in page and "VAT number, as it should appear on the invoice." in page
    # Sent again unchanged: nothing to record.
    post_form(client, path, {"address": "1 rue de la Paix\n75002 Paris", "vat_id": "FR 40303265045"})
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id))) == 1
    # The admin finds who changed what from the account page: its link opens the log on this account.
    history = re.search(r'<a href="([^"]+)">Audit log</a>', page[page.index('class="account-links"'):])
    assert history is not None
    log = text(client.get(unescape(history.group(1))))
    assert "1 rue de la Paix" in log and "FR40303265045" in log


def test_a_wrong_vat_id_is_said_beside_its_field_and_writes_nothing(app, client, people, clients):
    login(client, people["staff"])
    before = snapshot(app)
    response = post_form(client, f"/staff/clients/{clients['acme']}/invoicing",
                         {"address": "Somewhere", "vat_id": "FR123"})
    assert response.status_code == 422
    page = text(response)
    assert re.search(r'aria-invalid="true"[^>]*id="vat_id"|id="vat_id"[^>]*aria-invalid="true"', page)
    assert "This is not a valid VAT ID" in page and 'value="FR123"' in page
    assert snapshot(app) == before


def test_an_account_that_does_not_exist_is_404(client, people):
    login(client, people["staff"])
    assert client.get("/staff/clients/999999").status_code == 404
    assert post_form(client, "/staff/clients/999999/invoicing", {"address": "x"}).status_code == 404


def test_the_desk_and_the_payments_page_link_to_the_account(app, client, people, clients):
    login(client, people["staff"])
    account = f'href="/staff/clients/{clients["acme"]}"'
    assert account in text(client.get(f"/desk/tickets/{clients['ticket']}"))
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        place(db.session, owner)
    assert account in text(client.get("/portal/staff/orders"))


def test_clients_see_no_list(client, people):
    login(client, people["owner"])
    assert client.get("/staff/clients").status_code == 403


@pytest.mark.parametrize("lang, words", [
    ("fr", ["Trier par", "Dernière activité", "4 comptes.", "Prochaine expiration", "2 personnes"]),
    ("es", ["Ordenar por", "Última actividad", "4 cuentas.", "Próximo vencimiento", "2 personas"]),
])
def test_the_list_and_the_account_page_speak_french_and_spanish(client, people, clients, lang, words):
    login(client, people["staff"])
    post_form(client, "/language", {"lang": lang})
    listing = text(client.get("/staff/clients"))
    for word in words:
        assert word in listing, word
    page = text(client.get(f"/staff/clients/{clients['acme']}"))
    assert {"fr": "Enregistrer les coordonnées de facturation", "es": "Guardar los datos de facturación"}[lang] in page
    assert {"fr": "Dernière connexion", "es": "Último acceso"}[lang] in page
