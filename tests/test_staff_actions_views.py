"""Staff actions of issue 14 in the browser's terms (Flask test client): an
admin adjusts credit from the account page, an agent opens a ticket for a
client and changes a ticket's request kind on the desk after a preview; and
who may reach each URL (the access matrix of point 5: a refused POST writes
nothing)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from conftest import PASSWORD, login, post_form
from ledger_support import pack
from sqlalchemy import func, select

from billing import audit
from billing.accounts.models import Account, User
from billing.desk import services as desk
from billing.desk.models import Ticket, TicketMessage
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Operation
from common.extensions import db
from common.identity import accounts

HX = {"HX-Request": "true"}
TOKEN = re.compile(r'name="token"[^>]*value="([0-9a-f]{32})"|value="([0-9a-f]{32})"[^>]*name="token"')


def now() -> datetime:
    return datetime.now(UTC)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def add_person(email: str, *, role: str, account: Account | None = None, staff: bool = False) -> None:
    db.session.add(User(account=account, role=role, email=email, name=email.split("@")[0].title(),
                        is_staff=staff, password_hash=accounts.hasher.hash(PASSWORD)))
    db.session.commit()


@pytest.fixture
def cast(app, people):
    """Owner, member (Acme, holding Innova credits and a ticket of 20 min
    as a consultation), another account's owner, an agent, an admin and a
    deactivated staff member. Returns the ids the URLs need."""
    with app.app_context():
        acme = user("owner@example.com").account
        ledger.grant(db.session, acme, pack(db.session, "innova-120"), key="acme-innova", now=now())
        other = accounts.register(db.session, "Other", "Otto Other", "other@example.com", PASSWORD, "en", "FR")
        add_person("agent@example.com", role="agent", staff=True)
        add_person("admin@example.com", role="admin", staff=True)
        add_person("gone@example.com", role="agent", staff=True)
        member = user("member@example.com")
        work = desk.open_ticket(db.session, acme, member, "Site slow", "Since this morning.", now=now(),
                                policy=pack(db.session, "innova-120").policy, kind="consultation")
        ledger.charge_ticket_to(db.session, work, 20, by=None, key="acme-20", now=now())
        return {"account": acme.id, "other": other.account_id, "ticket": work.id}


def as_(client, email: str):
    login(client, email)
    return client


def counts() -> dict[str, int]:
    return {name: db.session.scalar(select(func.count()).select_from(model)) for name, model in
            (("operations", Operation), ("entries", Entry), ("tickets", Ticket), ("messages", TicketMessage),
             ("audit", audit.AuditEntry))}


def token_of(page: str) -> str:
    found = TOKEN.search(page)
    assert found, "the form carries no one-time token"
    return found.group(1) or found.group(2)


# ------------------------------------------------------------------ credit

def test_an_admin_removes_two_units_and_the_client_statement_shows_the_reason(app, client, cast):
    as_(client, "admin@example.com")
    account = client.get(f"/staff/clients/{cast['account']}").get_data(as_text=True)
    assert f"/staff/clients/{cast['account']}/adjust" in account
    page = client.get(f"/staff/clients/{cast['account']}/adjust").get_data(as_text=True)
    assert "90 credits" in page  # 120 less the consultation's 30
    assert "starting with the lots that expire first;" in page  # it said "the lots expiring first first"
    with app.app_context():
        policy = pack(db.session, "innova-120").policy
    answer = post_form(client, f"/staff/clients/{cast['account']}/adjust", {
        "balance": f"{policy.id}-credit", "direction": "remove", "quantity": "2",
        "reason": "Phone call logged twice", "token": token_of(page)})
    assert answer.status_code == 302 and answer.location.endswith(f"/staff/clients/{cast['account']}")
    shown = client.get(answer.location).get_data(as_text=True)
    assert "−2 credits" in shown and "88 credits" in shown
    with app.app_context():
        assert ledger.balance(db.session, cast["account"], policy.id, "credit", now=now()).net == 88
    client.get("/logout")
    as_(client, "owner@example.com")
    statement = client.get(f"/portal/accounts/{cast['account']}/statement").get_data(as_text=True)
    assert "Adjustment" in statement and "Phone call logged twice" in statement and "−2 credits" in statement


def test_the_same_adjustment_form_sent_twice_removes_once(app, client, cast):
    as_(client, "admin@example.com")
    page = client.get(f"/staff/clients/{cast['account']}/adjust").get_data(as_text=True)
    with app.app_context():
        policy = pack(db.session, "innova-120").policy
    data = {"balance": f"{policy.id}-credit", "direction": "remove", "quantity": "2", "reason": "Twice",
            "token": token_of(page)}
    post_form(client, f"/staff/clients/{cast['account']}/adjust", data)
    again = post_form(client, f"/staff/clients/{cast['account']}/adjust", data)
    assert again.status_code == 302
    assert "already recorded" in client.get(again.location).get_data(as_text=True)
    with app.app_context():
        assert ledger.balance(db.session, cast["account"], policy.id, "credit", now=now()).net == 88


@pytest.mark.parametrize(("fields", "message"), [
    ({"quantity": "91"}, "Only 90 credits can be removed"),
    ({"reason": ""}, "Give the reason"),
    ({"quantity": "-3"}, "Number must be between"),
    ({"quantity": "two"}, "Enter a whole number of units."),
    ({"balance": "999-credit"}, "Choose a balance of this account."),
    ({"token": "stale"}, "This form has expired"),
])
def test_an_adjustment_refused_says_why_beside_the_field_and_writes_nothing(app, client, cast, fields, message):
    as_(client, "admin@example.com")
    page = client.get(f"/staff/clients/{cast['account']}/adjust").get_data(as_text=True)
    with app.app_context():
        policy = pack(db.session, "innova-120").policy
        before = counts()
    data = {"balance": f"{policy.id}-credit", "direction": "remove", "quantity": "2", "reason": "Why",
            "token": token_of(page), **fields}
    answer = post_form(client, f"/staff/clients/{cast['account']}/adjust", data)
    assert answer.status_code == 422
    assert message in answer.get_data(as_text=True)
    with app.app_context():
        assert counts() == before


# ------------------------------------------------------------------ ticket for a client

def mails(app) -> list:
    folder = Path(app.config["MAIL_FOLDER"])
    return [message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in sorted(folder.glob("*.eml"))]


def test_an_agent_opens_a_ticket_for_the_member_who_is_told(app, client, cast):
    as_(client, "agent@example.com")
    url = f"/staff/clients/{cast['account']}/tickets/new"
    with app.app_context():
        member_id = user("member@example.com").id
        policy = pack(db.session, "innova-120").policy
    page = client.get(url, query_string={"person": member_id}).get_data(as_text=True)
    assert "Max Member" in page and "Intervention" in page
    fragment = client.get(url, query_string={"person": member_id}, headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="ticket-balance">') or 'id="ticket-balance"' in fragment[:200]
    answer = post_form(client, url, {"person": str(member_id), "balance": f"{policy.id}-credit",
                                     "kind": "intervention", "criticality": "high", "subject": "Printer offline",
                                     "description": "Called at 9:10: the printer is offline.",
                                     "token": token_of(page)})
    assert answer.status_code == 302 and "/desk/tickets/" in answer.location
    shown = client.get(answer.location).get_data(as_text=True)
    assert "opened for them by Agent" in shown
    with app.app_context():
        work = db.session.scalar(select(Ticket).where(Ticket.subject == "Printer offline"))
        assert (work.opened_by_id, work.kind, work.criticality) == (member_id, "intervention", "high")
    [mail] = [m for m in mails(app) if "member@example.com" in m["To"]]
    assert "opened for you" in mail["Subject"]
    assert "Agent of our team opened ticket" in mail.get_body(("plain",)).get_content()
    client.get("/logout")
    as_(client, "member@example.com")
    assert "opened for them by Agent of our team" in client.get(f"/portal/tickets/{work.id}").get_data(as_text=True)


def test_a_ticket_for_a_client_without_a_subject_is_refused_and_writes_nothing(app, client, cast):
    as_(client, "agent@example.com")
    with app.app_context():
        before = counts()
    answer = post_form(client, f"/staff/clients/{cast['account']}/tickets/new", {"subject": "", "description": "x"})
    assert answer.status_code == 422
    with app.app_context():
        assert counts() == before


def test_the_same_ticket_form_sent_twice_opens_one_ticket_and_lands_on_it(app, client, cast):
    as_(client, "agent@example.com")
    url = f"/staff/clients/{cast['account']}/tickets/new"
    with app.app_context():
        member_id = user("member@example.com").id
        policy = pack(db.session, "innova-120").policy
    data = {"person": str(member_id), "balance": f"{policy.id}-credit", "kind": "consultation",
            "criticality": "normal", "subject": "Called twice", "description": "A double click.",
            "token": token_of(client.get(url).get_data(as_text=True))}
    first = post_form(client, url, data)
    again = post_form(client, url, data)
    assert first.status_code == again.status_code == 302 and first.location == again.location
    assert "already opened" in client.get(again.location).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Ticket.subject == "Called twice")) == 1
    # A new form is a new ticket, even with the same words.
    data["token"] = token_of(client.get(url).get_data(as_text=True))
    assert post_form(client, url, data).location != first.location


def test_a_ticket_form_with_a_stale_token_is_refused_and_writes_nothing(app, client, cast):
    as_(client, "agent@example.com")
    url = f"/staff/clients/{cast['account']}/tickets/new"
    with app.app_context():
        member_id = user("member@example.com").id
        policy = pack(db.session, "innova-120").policy
        before = counts()
    for token in ("", "stale", "Z" * 32):
        answer = post_form(client, url, {"person": str(member_id), "balance": f"{policy.id}-credit",
                                         "kind": "consultation", "criticality": "normal", "subject": "Stale",
                                         "description": "Old form.", "token": token})
        assert answer.status_code == 422 and "This form has expired" in answer.get_data(as_text=True)
        assert token_of(answer.get_data(as_text=True)) != token  # a fresh one to send it again
    with app.app_context():
        assert counts() == before


# ------------------------------------------------------------------ request kind on the desk

def test_an_agent_previews_then_changes_the_kind_and_the_charge_follows(app, client, cast):
    as_(client, "agent@example.com")
    ticket_url = f"/desk/tickets/{cast['ticket']}"
    assert 'id="kind-change"' in client.get(ticket_url).get_data(as_text=True)
    preview = client.get(f"{ticket_url}/kind", query_string={"kind": "intervention"}, headers=HX)
    text = preview.get_data(as_text=True)
    assert text.lstrip().startswith('<article id="kind-change"')
    assert "Consultation → Intervention" in text and "30 credits → <strong>60 credits</strong>" in text
    with app.app_context():
        assert db.session.get(Ticket, cast["ticket"]).units_charged == 30  # a preview writes nothing
    answer = post_form(client, f"{ticket_url}/kind", {"kind": "intervention", "expected": "consultation",
                                                      "token": token_of(text)})
    assert answer.status_code == 302
    assert "it costs 60 credits (was 30 credits)" in client.get(answer.location).get_data(as_text=True)
    with app.app_context():
        work = db.session.get(Ticket, cast["ticket"])
        assert (work.kind, work.units_charged) == ("intervention", 60)
        policy = pack(db.session, "innova-120").policy
        assert ledger.balance(db.session, cast["account"], policy.id, "credit", now=now()).net == 60


def test_the_preview_works_without_javascript(client, cast):
    as_(client, "agent@example.com")
    page = client.get(f"/desk/tickets/{cast['ticket']}/kind", query_string={"kind": "intervention"})
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert "Confirm: charge as Intervention" in page.get_data(as_text=True)


def test_a_stale_kind_form_is_refused_and_writes_nothing(app, client, cast):
    as_(client, "agent@example.com")
    with app.app_context():
        before = counts()
    for data in ({"kind": "intervention", "expected": "intervention", "token": "a" * 32},
                 {"kind": "intervention", "expected": "consultation", "token": "nope"},
                 {"kind": "nonsense", "expected": "consultation", "token": "b" * 32}):
        answer = post_form(client, f"/desk/tickets/{cast['ticket']}/kind", data)
        assert answer.status_code == 422
    with app.app_context():
        assert counts() == before


def test_an_unknown_account_or_ticket_is_a_404(client, cast):
    as_(client, "admin@example.com")
    assert client.get("/staff/clients/999999/adjust").status_code == 404
    assert client.get("/staff/clients/999999/tickets/new").status_code == 404
    assert client.get("/desk/tickets/999999/kind").status_code == 404


@pytest.mark.parametrize(("language", "words"), [
    ("fr", ("Ajuster le crédit", "Retirer des unités", "Confirmer\u00a0: décompter comme",
            "Ouvrir un ticket pour ce client")),
    ("es", ("Ajustar el crédito", "Retirar unidades", "Confirmar: cobrar como", "Abrir un ticket para este cliente")),
])
def test_the_actions_speak_the_staff_members_language(app, client, cast, language, words):
    with app.app_context():
        user("admin@example.com").language = language
        db.session.commit()
    as_(client, "admin@example.com")
    pages = "".join(client.get(path, query_string=query).get_data(as_text=True) for path, query in (
        (f"/staff/clients/{cast['account']}/adjust", {}),
        (f"/desk/tickets/{cast['ticket']}/kind", {"kind": "intervention"}),
        (f"/staff/clients/{cast['account']}/tickets/new", {})))
    for word in words:
        assert word in pages


def test_a_kind_change_beyond_an_ask_balance_is_previewed_and_the_owners_are_asked(app, client, cast):
    """Seed 002: 200 min of e-mail on a 3 h pack, then charged as production."""
    with app.app_context():
        owner = user("owner@example.com")
        ledger.grant(db.session, owner.account, pack(db.session, "digitale-3h"), key="acme-digitale", now=now())
        work = desk.open_ticket(db.session, owner.account, owner, "Mails", "Many mails.", now=now(),
                                policy=pack(db.session, "digitale-3h").policy, kind="communication")
        ledger.charge_ticket_to(db.session, work, 200, by=None, key="acme-200", now=now())
        ticket_id = work.id
    as_(client, "agent@example.com")
    text = client.get(f"/desk/tickets/{ticket_id}/kind", query_string={"kind": "production"},
                      headers=HX).get_data(as_text=True)
    assert "0 min → <strong>3 h 20 min</strong>" in text
    assert "The balance lacks 20 min: confirming asks the account" in text
    answer = post_form(client, f"/desk/tickets/{ticket_id}/kind", {"kind": "production", "expected": "communication",
                                                                  "token": token_of(text)})
    page = client.get(answer.location).get_data(as_text=True)
    assert "the account&#39;s owners are asked to approve (1 told by email)" in page


def test_the_audit_log_tells_an_adjustment_and_a_kind_change_in_words(app, client, cast):
    as_(client, "admin@example.com")
    page = client.get(f"/staff/clients/{cast['account']}/adjust").get_data(as_text=True)
    with app.app_context():
        policy = pack(db.session, "innova-120").policy
    post_form(client, f"/staff/clients/{cast['account']}/adjust", {
        "balance": f"{policy.id}-credit", "direction": "add", "quantity": "5", "reason": "Goodwill",
        "token": token_of(page)})
    text = client.get(f"/desk/tickets/{cast['ticket']}/kind", query_string={"kind": "intervention"},
                      headers=HX).get_data(as_text=True)
    post_form(client, f"/desk/tickets/{cast['ticket']}/kind", {"kind": "intervention", "expected": "consultation",
                                                              "token": token_of(text)})
    log = client.get("/staff/audit").get_data(as_text=True)
    for words in ("Credit adjusted", "Request kind changed", "Goodwill", "Units moved", "Units charged",
                  "intervention"):
        assert words in log


def test_an_admin_adds_units_for_one_person(app, client, cast):
    as_(client, "admin@example.com")
    page = client.get(f"/staff/clients/{cast['account']}/adjust").get_data(as_text=True)
    assert "Only Max Member" in page
    with app.app_context():
        policy = pack(db.session, "innova-120").policy
        member = user("member@example.com")
    answer = post_form(client, f"/staff/clients/{cast['account']}/adjust", {
        "balance": f"{policy.id}-credit", "direction": "add", "owner": str(member.id), "quantity": "15",
        "reason": "Training for Max", "token": token_of(page)})
    assert answer.status_code == 302
    with app.app_context():
        assert ledger.balance(db.session, cast["account"], policy.id, "credit", now=now(),
                              user_id=member.id).units == 105
        assert ledger.balance(db.session, cast["account"], policy.id, "credit", now=now(),
                              user_id=user("owner@example.com").id).units == 90
    refused = post_form(client, f"/staff/clients/{cast['account']}/adjust", {
        "balance": f"{policy.id}-credit", "direction": "add", "owner": "999", "quantity": "15",
        "reason": "Nobody", "token": token_of(page)[::-1]})
    assert refused.status_code == 422 and "Choose a person of this account." in refused.get_data(as_text=True)
