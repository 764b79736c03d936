"""The client side of the portal through HTTP: the dashboard and its live
balance, tickets (open, files, thread, cost, rating, report), the pool's
invitations and removals, buy more, and who may see which URL."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bank_support import camt
from checkout_support import EUR_IBAN, SELLER, confirm, place
from flask import Flask, Request
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from billing.accounts.models import User
from billing.bank import imports
from billing.bank import mappings as bank_mappings
from billing.bank.statements import Mapping
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Attachment, Invitation, Ticket, TicketMessage
from billing.ledger import services as ledger
from billing.ledger.models import Overage
from billing.notifications.outbox import OutboxMessage
from billing.orders import overage_bills
from billing.orders.models import Invoice
from billing.quotes import services as quotes
from common.extensions import db
from common.identity import accounts
from tests.access import covers
from tests.conftest import CSRF_META, FORM_TOKEN, PASSWORD, PEOPLE, csrf_token, login, make_app, make_people, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.test_security import snapshot

NOW = datetime.now(UTC)
# The tests whose queries differ most between the engines run on both.
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    return {**smtp_server.config, "PROVIDER_IBAN": EUR_IBAN}


@pytest.fixture
def world(app, people):
    """Acme (owner, member) with 36 Too Pixel credits and a ticket with an
    internal note; Other Co with its own member and ticket; staff."""
    return build_world(app, people)


def build_world(app, people) -> dict[str, int]:
    with app.app_context():
        load_preset(db.session, "toopixel")
        load_preset(db.session, "itsupport")
        pack = db.session.scalar(select(Pack).where(Pack.slug == "toopixel-36"))
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        staff = db.session.scalar(select(User).where(User.email == people["staff"]))
        ledger.grant(db.session, owner.account, pack, key="acme-grant", now=NOW)
        ticket = desk.open_ticket(db.session, owner.account, owner, "Site down", "It shows an error.", now=NOW,
                                  policy=pack.policy)
        desk.post_message(db.session, ticket, staff, "staff-only-remark", internal=True, now=NOW)
        other = accounts.register(db.session, "Other Co", "Oscar Other", "other@example.com", PASSWORD, "en", "FR")
        ledger.grant(db.session, other.account, pack, key="other-grant", now=NOW)
        foreign = desk.open_ticket(db.session, other.account, other, "Secret other subject", "private", now=NOW,
                                   policy=pack.policy)
        return {"ticket": ticket.id, "foreign": foreign.id, "account": owner.account_id,
                "other_account": other.account_id, "policy": pack.policy_id}


def log(app, ticket_id: int, minutes: int, key: str, billable: bool = True) -> None:
    with app.app_context():
        staff = db.session.scalar(select(User).where(User.is_staff.is_(True)))
        desk.log_time(db.session, db.session.get(Ticket, ticket_id), staff, minutes, billable, "work", key,
                      datetime.now(UTC))


def resolve(app, ticket_id: int, note: str = "") -> None:
    with app.app_context():
        staff = db.session.scalar(select(User).where(User.is_staff.is_(True)))
        ticket = db.session.get(Ticket, ticket_id)
        if note:
            desk.set_staff_note(db.session, ticket, note, by=staff, now=NOW)
        desk.set_status(db.session, ticket, "resolved", by=staff, now=NOW)


def text(response) -> str:
    return response.get_data(as_text=True)


# --- Dashboard and live balance -------------------------------------------------

def test_dashboard_shows_balance_lots_and_links(client, people, world):
    login(client, people["member"])
    page = text(client.get("/portal/"))
    assert "36 credits" in page and "about 6 h of work" in page
    assert "everyone in the account" in page
    for link in ("/portal/tickets", f"/portal/accounts/{world['account']}/statement", "/portal/orders",
                 "/portal/buy", "/portal/reports", "/portal/people"):
        assert f'href="{link}"' in page
    assert 'hx-trigger="every 3s"' in page


def test_live_balance_answers_304_until_the_balance_moves(app, client, people, world):
    login(client, people["owner"])
    first = client.get("/portal/balance", headers={"HX-Request": "true"})
    assert first.status_code == 200 and "36 credits" in text(first)
    tag = first.headers["ETag"]
    assert f'If-None-Match": "\\{tag[:-1]}\\""' in text(first)  # the fragment sends its own tag back
    same = client.get("/portal/balance", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.data == b""
    log(app, world["ticket"], 27, "live-27")
    moved = client.get("/portal/balance", headers={"If-None-Match": tag})
    assert moved.status_code == 200 and "33 credits" in text(moved) and moved.headers["ETag"] != tag
    assert "Site down" in text(moved)  # the recent consumption


def test_live_balance_of_nobody(client, people, world):
    anonymous = client.get("/portal/balance", headers={"HX-Request": "true"})
    assert anonymous.status_code == 401 and anonymous.headers["HX-Redirect"].startswith("/login")
    login(client, people["staff"])
    assert client.get("/portal/balance").status_code == 404


def test_single_user_lot_is_shown_as_such(app, client, people, world):
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "toopixel-72"))
        ledger.grant(db.session, owner.account, pack, key="own-lot", now=NOW, owner=owner)
    login(client, people["member"])
    page = text(client.get("/portal/"))
    assert "Olive Owner only" in page and "Your tickets may draw on 36 credits" in page


def figure(page: str, policy: str) -> str:
    found = re.search(rf'data-testid="balance-{policy}">(.*?)</strong>', page, re.S)
    assert found, f"no balance {policy} on the page"
    return found.group(1).strip()


def test_a_used_up_balance_stays_at_zero_with_its_warning(app, client, people, world):
    log(app, world["ticket"], 360, "all-36")  # 36 credits: every lot at 0
    login(client, people["member"])
    page = text(client.get("/portal/"))
    assert figure(page, "toopixel-credits") == "0 credits"
    assert "Low balance: less than 7 credits left." in page and "No credit yet" not in page
    assert "Nothing left on this balance." in page
    fragment = text(client.get("/portal/balance"))
    assert figure(fragment, "toopixel-credits") == "0 credits" and "Low balance" in fragment


def test_a_debt_shows_below_zero(app, client, people, world):
    with app.app_context():
        db.session.get(Ticket, world["ticket"]).policy.overage_mode = "allow"
        db.session.commit()
    log(app, world["ticket"], 400, "debt-40")  # 40 credits on 36
    login(client, people["owner"])
    page = text(client.get("/portal/"))
    assert figure(page, "toopixel-credits") == "−4 credits"
    assert "4 credits owed: the next pack pays it first." in page and "Low balance" in page


@pytest.fixture
def asked(app, people, world):
    """Acme's 3 h of Digitale Artiste used up by a 200-minute ticket: 20 min
    asked beyond the balance, awaiting the owner."""
    return build_asked(app, people)


def build_asked(app, people) -> dict[str, int]:
    with app.app_context():
        load_preset(db.session, "digitale")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "digitale-3h"))
        ledger.grant(db.session, owner.account, pack, key="digitale-3h", now=NOW)
        ticket = desk.open_ticket(db.session, owner.account, owner, "New page", "Please.", now=NOW,
                                  policy=pack.policy, kind="production")
        ticket_id = ticket.id
    log(app, ticket_id, 200, "ask-200")
    with app.app_context():
        [overage] = db.session.get(Ticket, ticket_id).overages
        assert overage.status == "pending"
        return {"ticket": ticket_id, "overage": overage.id}


@BOTH
def test_a_pending_overage_is_on_the_dashboard_with_its_answer(app, client, people, asked):
    login(client, people["member"])
    page = text(client.get("/portal/"))
    assert figure(page, "digitale-minutes") == "0 min" and "Low balance: less than 36 min left." in page
    assert "20 min beyond the balance await the owner's answer." in page
    assert f'href="/portal/tickets/{asked["ticket"]}"' in page
    assert f'/portal/overages/{asked["overage"]}/approve' not in page  # members do not answer
    client.post("/logout", data={"csrf_token": csrf_token(client, "/portal/")})
    login(client, people["owner"])
    page = text(client.get("/portal/"))
    assert "20 min beyond the balance await your answer." in page
    assert "Approve: billed €26.00 incl. VAT (€21.67 excl. VAT)" in page
    assert f'action="/portal/overages/{asked["overage"]}/decline"' in page
    response = post_form(client, f"/portal/overages/{asked['overage']}/approve", {"next": "/portal/"})
    assert response.status_code == 302 and response.headers["Location"] == "/portal/"
    page = text(client.get("/portal/"))
    assert "await your answer" not in page and figure(page, "digitale-minutes") == "0 min"


@BOTH
@pytest.mark.parametrize("answer", ["approve", "decline"])
def test_answering_an_overage_changes_the_live_balance_tag(app, client, people, asked, answer):
    login(client, people["owner"])
    first = client.get("/portal/balance")
    assert "await your answer" in text(first)
    tag = first.headers["ETag"]
    assert client.get("/portal/balance", headers={"If-None-Match": tag}).status_code == 304
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        decide = overage_bills.approve if answer == "approve" else ledger.decline_overage
        decide(db.session, db.session.get(Overage, asked["overage"]), by=owner, now=NOW)
    moved = client.get("/portal/balance", headers={"If-None-Match": tag})
    assert moved.status_code == 200 and moved.headers["ETag"] != tag
    assert "await your answer" not in text(moved)
    assert client.get("/portal/balance", headers={"If-None-Match": moved.headers["ETag"]}).status_code == 304


# --- Tickets ----------------------------------------------------------------

def new_ticket(client, **fields):
    page = text(client.get("/portal/tickets/new"))
    balance = re.search(r'<option (?:selected )?value="([^"]+)"', page).group(1)
    data = {"subject": "Printer", "description": "It jams.", "balance": balance, "criticality": "normal",
            "token": FORM_TOKEN.search(page).group(1), **fields}
    data.setdefault("csrf_token", csrf_token(client, "/portal/tickets/new"))
    sent = {name: value for name, value in data.items() if value is not None}
    return client.post("/portal/tickets/new", data=sent, content_type="multipart/form-data")


def test_open_a_ticket_with_a_file_and_no_script(app, client, people, world):
    login(client, people["member"])
    response = new_ticket(client, description='Help <script>alert("x")</script><b onclick="y()">now</b>',
                          criticality="high", files=[(io.BytesIO(PNG), "screen.png")])
    assert response.status_code == 302
    ticket_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = text(client.get(f"/portal/tickets/{ticket_id}"))
    assert "<script>alert" not in page and "onclick" not in page and "<b>now</b>" in page
    assert "High" in page and "screen.png" in page
    with app.app_context():
        attachment = db.session.scalar(select(Attachment).where(Attachment.ticket_id == ticket_id))
        assert db.session.get(Ticket, ticket_id).opened_by.email == people["member"]
    with client.get(f"/portal/tickets/{ticket_id}/files/{attachment.id}") as download:
        assert download.data == PNG and download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.headers["Content-Disposition"].startswith("attachment")


def test_a_refused_file_is_said_and_nothing_is_written(app, client, people, world):
    login(client, people["member"])
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(TicketMessage))
    response = new_ticket(client, files=[(io.BytesIO(b"MZ..."), "tool.exe")])
    assert response.status_code == 422 and "files of this type are not accepted" in text(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(TicketMessage)) == before


def test_the_same_ticket_form_sent_twice_opens_one_ticket_and_lands_on_it(app, client, people, world):
    """A double click on Open the ticket: one ticket, and the second answer is that ticket, said so."""
    login(client, people["member"])
    token = FORM_TOKEN.search(text(client.get("/portal/tickets/new"))).group(1)
    first = new_ticket(client, subject="Sent twice", token=token)
    again = new_ticket(client, subject="Sent twice", token=token)
    assert first.status_code == again.status_code == 302 and first.location == again.location
    assert "was already opened from this form" in text(client.get(again.location))
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Ticket.subject == "Sent twice")) == 1
    # A new form is a new ticket, even with the same words.
    assert new_ticket(client, subject="Sent twice").location != first.location
    # Another person's form is not theirs to land on.
    other = app.test_client()
    login(other, "other@example.com")
    refused = new_ticket(other, subject="Sent twice", token=token)
    assert refused.status_code == 422 and "This form has expired" in text(refused)


def test_a_ticket_form_without_its_token_is_refused_with_a_fresh_form(app, client, people, world):
    login(client, people["member"])
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Ticket))
    for token in (None, "", "stale", "Z" * 32):
        refused = new_ticket(client, subject="No token", token=token)
        page = text(refused)
        assert refused.status_code == 422 and "This form has expired" in page
        assert FORM_TOKEN.search(page) and 'value="No token"' in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Ticket)) == before


def test_an_oversized_upload_is_refused_with_413_before_it_is_read(app, client, people, world, monkeypatch):
    config = app.config
    # Every file allowed, each at its limit, still fits.
    assert config["MAX_CONTENT_LENGTH"] > config["ATTACHMENT_MAX_BYTES"] * config["ATTACHMENT_MAX_FILES"]
    login(client, people["member"])
    page = text(client.get("/portal/tickets/new"))
    balance = re.search(r'<option (?:selected )?value="([^"]+)"', page).group(1)
    spooled = []
    monkeypatch.setattr(Request, "_get_file_stream", lambda *args, **kwargs: spooled.append(args) or io.BytesIO())
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Ticket))
    # Encoded in memory (the test client would spool a body this big to a file of its own).
    boundary, body = encode_multipart(MultiDict({
        "csrf_token": CSRF_META.search(page).group(1), "subject": "Huge", "description": "Big file",
        "balance": balance, "criticality": "normal",
        "files": FileStorage(io.BytesIO(PNG + b"\0" * config["MAX_CONTENT_LENGTH"]), "huge.png", "files",
                             "image/png")}))
    response = client.post("/portal/tickets/new", data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert "Upload too large" in text(response) and "The file you sent is larger than we accept." in text(response)
    assert spooled == []  # not a byte of it reached a temporary file
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Ticket)) == before
    folder = __import__("pathlib").Path(config["ATTACHMENT_FOLDER"])
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def test_thread_hides_internal_notes_from_clients(client, people, world):
    login(client, people["owner"])
    page = text(client.get(f"/portal/tickets/{world['ticket']}"))
    assert "It shows an error." in page and "staff-only-remark" not in page
    client.post("/logout", data={"csrf_token": csrf_token(client, "/portal/")})
    login(client, people["staff"])
    assert "staff-only-remark" in text(client.get(f"/portal/tickets/{world['ticket']}"))


def test_reply_and_list_filters(client, people, world):
    login(client, people["member"])
    response = post_form(client, f"/portal/tickets/{world['ticket']}/messages", {"body": "Any news?"},
                         content_type="multipart/form-data")
    assert response.status_code == 302
    assert "Any news?" in text(client.get(f"/portal/tickets/{world['ticket']}"))
    assert "Site down" in text(client.get("/portal/tickets?status=open"))
    assert "Site down" not in text(client.get("/portal/tickets?status=resolved"))
    fragment = client.get("/portal/tickets?status=open", headers={"HX-Request": "true"})
    assert text(fragment).lstrip().startswith('<div id="ticket-list"') and "HX-Request" in fragment.headers["Vary"]
    assert "Secret other subject" not in text(client.get("/portal/tickets"))


def test_cost_explained_rating_and_report(app, client, people, world):
    log(app, world["ticket"], 27, "r-27")
    log(app, world["ticket"], 15, "r-mail", billable=False)
    login(client, people["owner"])
    assert client.get(f"/portal/tickets/{world['ticket']}/report").status_code == 404  # not resolved yet
    page = text(client.get(f"/portal/tickets/{world['ticket']}"))
    assert "27 min → 3 blocks of 10 min → 3 credits" in page
    resolve(app, world["ticket"], note="Restarted the server.")
    response = post_form(client, f"/portal/tickets/{world['ticket']}/rating", {"rating": "6"})
    assert response.status_code == 422
    response = post_form(client, f"/portal/tickets/{world['ticket']}/rating", {"rating": "5", "comment": "Fast"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Ticket, world["ticket"]).rating == 5
    report = text(client.get(f"/portal/tickets/{world['ticket']}/report"))
    assert "Restarted the server." in report and "<td>no</td>" in report and "27 min → 3 blocks" in report
    pdf = client.get(f"/portal/tickets/{world['ticket']}/report.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert f"/portal/tickets/{world['ticket']}/report" in text(client.get("/portal/reports"))


def test_french_explanation(app, client, people, world):
    log(app, world["ticket"], 27, "fr-27")
    login(client, people["owner"])
    post_form(client, "/language", {"lang": "fr", "next": "/portal/"})
    page = text(client.get(f"/portal/tickets/{world['ticket']}"))
    assert "27\u00a0min → 3 tranches de 10\u00a0min → 3 crédits" in page  # French spacing: no-break spaces


def test_itsupport_ticket_past_30_minutes_shows_its_second_ticket(app, client, people, world):
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "itsupport-tickets-20"))
        ledger.grant(db.session, owner.account, pack, key="it-grant", now=NOW)
        ticket = desk.open_ticket(db.session, owner.account, owner, "Mail", "broken", now=NOW, policy=pack.policy)
        ticket_id = ticket.id
    log(app, ticket_id, 25, "it-25")
    login(client, people["owner"])
    assert "it uses" not in text(client.get(f"/portal/tickets/{ticket_id}"))
    log(app, ticket_id, 15, "it-15")
    page = text(client.get(f"/portal/tickets/{ticket_id}"))
    assert "This subject took more than 30 minutes of work: it uses 2 tickets." in page


def test_buy_more_lists_every_pack_for_the_account(client, people, world):
    login(client, people["member"])
    page = text(client.get("/portal/buy"))
    assert 'href="/checkout/toopixel-72"' in page and 'href="/checkout/itsupport-tickets-20"' in page
    assert "Buy for Acme" in page


# --- The pool ---------------------------------------------------------------

def test_invite_accept_and_remove(app, client, people, world, smtp_server):  # noqa: F811
    login(client, people["owner"])
    response = post_form(client, "/portal/people/invitations", {"email": "new@example.com", "role": "member"})
    assert response.status_code == 302
    link = smtp_server.last_link("new@example.com", "/invitations/")
    path = link.split("localhost", 1)[-1] if "localhost" in link else "/" + link.split("/", 3)[3]

    guest = app.test_client()
    assert "Join Acme" in text(guest.get(path))
    response = post_form(guest, path, {"name": "Nina New", "password": "short", "confirm": "short", "language": "en"})
    assert response.status_code == 422
    response = post_form(guest, path, {"name": "Nina New", "password": PASSWORD, "confirm": PASSWORD,
                                       "language": "en"})
    assert response.status_code == 302 and response.headers["Location"] == "/portal/"
    assert "36 credits" in text(guest.get("/portal/"))
    assert guest.get(path).status_code == 400  # used once

    with app.app_context():
        nina = db.session.scalar(select(User).where(User.email == "new@example.com"))
        assert (nina.account_id, nina.role) == (world["account"], "member")
    response = post_form(client, f"/portal/people/{nina.id}/remove")
    assert response.status_code == 302
    refused = guest.get("/portal/")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/login")
    assert login(guest, "new@example.com").status_code == 422


def invitation_path(smtp_server, email: str) -> str:  # noqa: F811
    link = smtp_server.last_link(email, "/invitations/")
    return "/invitations/" + link.split("/invitations/", 1)[1]


def test_an_owner_withdraws_an_invitation_and_its_link_says_so(app, client, people, world, smtp_server):  # noqa: F811
    login(client, people["owner"])
    assert post_form(client, "/portal/people/invitations", {"email": "late@example.com", "role": "member"}
                     ).status_code == 302
    path = invitation_path(smtp_server, "late@example.com")
    with app.app_context():
        invitation_id = db.session.scalar(select(Invitation.id).where(Invitation.email == "late@example.com"))
    revoke = f"/portal/people/invitations/{invitation_id}/revoke"
    assert f'action="{revoke}"' in text(client.get("/portal/people"))

    member = app.test_client()
    login(member, people["member"])
    assert post_form(member, revoke).status_code == 403
    guest = app.test_client()
    assert "Join Acme" in text(guest.get(path))  # still valid

    response = post_form(client, revoke)
    assert response.status_code == 302 and response.headers["Location"] == "/portal/people"
    page = text(client.get("/portal/people"))
    assert "The invitation to late@example.com is withdrawn." in page and f'action="{revoke}"' not in page
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).revoked_at is not None
    link = guest.get(path)
    assert link.status_code == 400 and "This invitation was withdrawn." in text(link)
    accepted = post_form(guest, path, {"name": "Late", "password": PASSWORD, "confirm": PASSWORD, "language": "en"})
    assert accepted.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "late@example.com")) is None


def test_an_invitation_already_accepted_is_not_said_withdrawn(app, client, people, world, smtp_server):  # noqa: F811
    login(client, people["owner"])
    post_form(client, "/portal/people/invitations", {"email": "quick@example.com", "role": "member"})
    path = invitation_path(smtp_server, "quick@example.com")
    with app.app_context():
        invitation_id = db.session.scalar(select(Invitation.id).where(Invitation.email == "quick@example.com"))
    guest = app.test_client()
    assert post_form(guest, path, {"name": "Quick", "password": PASSWORD, "confirm": PASSWORD, "language": "en"}
                     ).status_code == 302
    # The owner's page was open before the invitation was accepted.
    response = post_form(client, f"/portal/people/invitations/{invitation_id}/revoke")
    assert response.status_code == 302
    page = text(client.get("/portal/people"))
    assert "withdrawn" not in page and "quick@example.com already accepted this invitation" in page
    home = guest.get("/portal/")
    assert home.status_code == 200 and "<h1>Acme</h1>" in text(home)  # still in the pool


def test_only_owners_invite_and_remove(client, people, world, app):
    login(client, people["member"])
    invitation = {"email": "x@example.com", "role": "owner"}
    assert post_form(client, "/portal/people/invitations", invitation).status_code == 403
    with app.app_context():
        owner_id = db.session.scalar(select(User.id).where(User.email == people["owner"]))
    assert post_form(client, f"/portal/people/{owner_id}/remove").status_code == 403


def test_an_owner_cannot_remove_another_accounts_user(client, people, world, app):
    login(client, people["owner"])
    with app.app_context():
        other_id = db.session.scalar(select(User.id).where(User.email == "other@example.com"))
    assert post_form(client, f"/portal/people/{other_id}/remove").status_code == 404
    with app.app_context():
        assert db.session.get(User, other_id).removed_at is None


# --- Who may see what -------------------------------------------------------------

# (URL, what each role gets): anonymous, member, owner, owner of another account, admin; an agent
# gets what the admin gets unless the row says, a staff member deactivated once logged in what anonymous gets.
# "login": sent to the login page; a path: a 302 to exactly that place; a number: that status.
# Every object in a URL is Acme's: another account's user must get 404, as if it did not exist.
MATRIX = [
    ("/portal/", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": "/staff/"}),
    ("/portal/balance", {"anon": 401, "member": 200, "owner": 200, "other": 200, "admin": 404}),
    ("/portal/tickets", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 200}),
    ("/portal/tickets/new", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 404}),
    ("/portal/tickets/{ticket}", {"anon": "login", "member": 200, "owner": 200, "other": 404, "admin": 200}),
    ("/portal/tickets/{ticket}/files/{file}", {"anon": "login", "member": 200, "owner": 200, "other": 404,
                                               "admin": 200}),
    ("/portal/tickets/{ticket}/report", {"anon": "login", "member": 200, "owner": 200, "other": 404, "admin": 200}),
    ("/portal/tickets/{ticket}/report.pdf", {"anon": "login", "member": 200, "owner": 200, "other": 404,
                                             "admin": 200}),
    ("/portal/reports", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 200}),
    ("/portal/people", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 404}),
    ("/portal/invoicing", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 404}),
    ("/portal/buy", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 404}),
    ("/portal/accounts/{account}/statement", {"anon": "login", "member": 200, "owner": 200, "other": 404,
                                              "admin": 200}),
    ("/portal/orders", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": "/portal/staff/orders"}),
    ("/portal/orders/{order}", {"anon": "login", "member": 200, "owner": 200, "other": 404, "admin": 200}),
    ("/portal/orders/{order}/instructions.pdf", {"anon": "login", "member": 200, "owner": 200, "other": 404,
                                                 "admin": 200}),
    ("/portal/invoices/{invoice}.pdf", {"anon": "login", "member": 200, "owner": 200, "other": 404, "admin": 200}),
    ("/portal/staff/orders", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/portal/staff/orders/{order}/refund/units", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                   "agent": 403, "admin": 200}),
    ("/portal/notifications", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 200}),
    # Each user reads their own account's subscription; staff have none.
    ("/portal/subscription", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": 403}),
    ("/portal/staff/mail", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/staff/clients", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    # The catalogue editor is an admin's; every one of its URLs × seven roles: test_catalogue_editor_access.py.
    ("/staff/catalogue", {"anon": "login", "member": 403, "owner": 403, "other": 403, "agent": 403, "admin": 200}),
    ("/staff/clients/{account}", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    # Bank statements: staff only (issue 15.1).
    ("/portal/staff/bank/", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/portal/staff/bank/imports/{bank_import}", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                  "admin": 200}),
    ("/portal/staff/bank/lines", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/portal/staff/bank/mappings", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/portal/staff/bank/mappings/{mapping}", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                               "admin": 200}),
    # The reports are an admin's; each of their URLs × seven roles: test_reports_views.py.
    ("/staff/reports/", {"anon": "login", "member": 403, "owner": 403, "other": 403, "agent": 403, "admin": 200}),
    ("/staff/reports/credit", {"anon": "login", "member": 403, "owner": 403, "other": 403, "agent": 403, "admin": 200}),
    # Quotes: Acme's, read by its users; requests and terms by staff.
    ("/portal/quotes", {"anon": "login", "member": 200, "owner": 200, "other": 200, "admin": "/staff/quotes"}),
    ("/portal/quotes/{quote}", {"anon": "login", "member": 200, "owner": 200, "other": 404,
                                "admin": "/staff/quotes/{quote}"}),
    ("/staff/quotes", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/staff/quotes/{quote}", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 200}),
    ("/quotes/request/itsupport-team-tickets", {"anon": 200, "member": 200, "owner": 200, "other": 200,
                                                "admin": 200}),
    # A visitor's quote is reached by whoever holds its link (mailed to the address that asked).
    ("/quotes/{quote_token}", {"anon": 200, "member": 200, "owner": 200, "other": 200, "admin": 200}),
    ("/staff/clients/{account}/orders/new", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                             "admin": 200}),
    ("/staff/clients/{account}/complimentary", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                "agent": 403, "admin": 200}),
]
# The same, for a POST that carries only the session's CSRF token: forms
# that need fields answer 422, actions that need none are carried out.
POSTS = [
    ("/portal/tickets/{ticket}/messages", {"anon": "login", "member": 422, "owner": 422, "other": 404, "admin": 422}),
    # No status chosen: said on the ticket's page.
    ("/portal/tickets/{ticket}/status", {"anon": "login", "member": "/portal/tickets/{ticket}",
                                         "owner": "/portal/tickets/{ticket}", "other": 404,
                                         "admin": "/portal/tickets/{ticket}"}),
    ("/portal/tickets/{ticket}/rating", {"anon": "login", "member": 422, "owner": 422, "other": 404, "admin": 422}),
    ("/portal/tickets/new", {"anon": "login", "member": 422, "owner": 422, "other": 422, "admin": 404}),
    ("/portal/people/invitations", {"anon": "login", "member": 403, "owner": 422, "other": 422, "admin": 403}),
    ("/portal/people/invitations/{invitation}/revoke", {"anon": "login", "member": 403, "owner": "/portal/people",
                                                        "other": 404, "admin": 403}),
    ("/portal/people/{member}/remove", {"anon": "login", "member": 403, "owner": "/portal/people", "other": 404,
                                        "admin": 403}),
    # Empty fields clear the details of the poster's own account.
    ("/portal/invoicing", {"anon": "login", "member": 403, "owner": "/portal/invoicing",
                           "other": "/portal/invoicing", "admin": 403}),
    ("/portal/overages/{overage}/approve", {"anon": "login", "member": 403, "owner": "/portal/tickets/{asked}",
                                            "other": 404, "admin": 404}),
    ("/portal/overages/{overage}/decline", {"anon": "login", "member": 403, "owner": "/portal/tickets/{asked}",
                                            "other": 404, "admin": 404}),
    ("/portal/staff/orders/{order}/cancel", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                             "admin": 422}),
    ("/portal/staff/payments/{payment}/confirm", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                  "admin": 422}),
    ("/portal/staff/orders/{order}/refund", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                             "agent": 403, "admin": 422}),
    # Nobody here subscribes: an owner has nothing to cancel.
    ("/portal/subscription/cancel", {"anon": "login", "member": 403, "owner": 404, "other": 404, "admin": 403}),
    ("/portal/notifications", {"anon": "login", "member": "/portal/notifications", "owner": "/portal/notifications",
                               "other": "/portal/notifications", "admin": "/portal/notifications"}),
    # Empty fields clear the account's details: staff may, clients never.
    ("/staff/clients/{account}/invoicing", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                           "admin": "/staff/clients/{account}#invoicing"}),
    ("/portal/staff/mail/{message}/resend", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                             "admin": "/portal/staff/mail"}),
    # No payment method chosen, no one-time token: said on the quote's page.
    ("/portal/quotes/{quote}/accept", {"anon": "login", "member": 422, "owner": 422, "other": 404, "admin": 403}),
    ("/staff/quotes/{quote}", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 422}),
    ("/staff/quotes/{quote}/withdraw", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                        "admin": "/staff/quotes"}),
    # No one-time token (a client's request needs nothing else): said on the form.
    ("/quotes/request/itsupport-team-tickets", {"anon": 422, "member": 422, "owner": 422, "other": 422,
                                                "admin": 403}),
    ("/quotes/{quote_token}", {"anon": 422, "member": 422, "owner": 422, "other": 422, "admin": 403}),
    ("/staff/clients/{account}/orders/new", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                             "admin": 422}),
    ("/staff/clients/{account}/complimentary", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                "agent": 403, "admin": 422}),
    ("/staff/catalogue/import", {"anon": "login", "member": 403, "owner": 403, "other": 403, "agent": 403,
                                 "admin": 422}),
    # No file, no order number, no note, no column: each said beside its field.
    ("/portal/staff/bank/imports", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 422}),
    ("/portal/staff/bank/lines/{bank_line}/assign", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                     "admin": 422}),
    ("/portal/staff/bank/lines/{bank_line}/discard", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                      "admin": 422}),
    ("/portal/staff/bank/mappings", {"anon": "login", "member": 403, "owner": 403, "other": 403, "admin": 422}),
    ("/portal/staff/bank/mappings/{mapping}", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                               "admin": 422}),
    ("/portal/staff/bank/mappings/{mapping}/delete", {"anon": "login", "member": 403, "owner": 403, "other": 403,
                                                      "admin": "/portal/staff/bank/mappings"}),
]
ROLES = ["anon", "member", "owner", "other", "agent", "admin", "deactivated"]
COVERS = covers([url for url, _ in MATRIX], [url for url, _ in POSTS])


# What the cells of the matrix run with: messages stay in the outbox
# (rendering their PDFs would double the time of each cell).
MATRIX_CONFIG = {"PROVIDER_IBAN": EUR_IBAN, "MAIL_DELIVER_AT_ONCE": False}


@pytest.fixture(scope="module")
def matrix_built(databases, tmp_path_factory) -> tuple[Path, dict]:
    """The matrix's world, built once for the module's two hundred cells:
    each cell gets a copy of its database and files (``matrix``)."""
    folder = tmp_path_factory.mktemp("matrix")
    app = make_app(databases.sqlite(folder), folder, **MATRIX_CONFIG)
    people = make_people(app)
    world = build_world(app, people)
    values = build_matrix_world(app, people, world, build_asked(app, people))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return folder, values


@dataclass
class Cell:
    app: Flask
    client: FlaskClient
    values: dict
    people: dict


@pytest.fixture
def matrix(matrix_built, tmp_path, smtp_server) -> Iterator[Cell]:  # noqa: F811
    """An app of the cell's own on a copy of the matrix's world."""
    folder, values = matrix_built
    shutil.copyfile(folder / "forfait.sqlite", tmp_path / "forfait.sqlite")
    shutil.copytree(folder / "attachments", tmp_path / "attachments")
    app = make_app(f"sqlite:///{tmp_path / 'forfait.sqlite'}", tmp_path, **smtp_server.config, **MATRIX_CONFIG)
    yield Cell(app, app.test_client(), values, dict(PEOPLE))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def build_matrix_world(app, people, world, asked) -> dict:
    """World, with the Acme ticket resolved and carrying a file; Acme's
    overage request, an order awaiting its transfer, a paid one with its
    invoice, an invitation waiting, and messages in the outbox; an agent,
    and an agent the deactivated cells deactivate."""
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket"])
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        rules = desk.AttachmentRules(folder=Path(app.config["ATTACHMENT_FOLDER"]),
                                     max_bytes=10_000, types=frozenset({"image/png"}))
        message = desk.post_message(db.session, ticket, owner, "see file", now=NOW,
                                    files=[desk.Upload("a.png", PNG)], rules=rules)
        member = db.session.scalar(select(User).where(User.email == people["member"]))
        accounts.create_staff(db.session, "Agnes Agent", "agent@example.com", PASSWORD, role="agent")
        accounts.create_staff(db.session, "Gus Gone", "gone@example.com", PASSWORD, role="agent")
        load_preset(db.session, "demo")
        awaited, payment = place(db.session, owner)
        _paid, settled = place(db.session, owner)
        confirm(db.session, settled)
        invoice = db.session.scalar(select(Invoice).where(Invoice.order_id == _paid.id))
        invitation, _token = desk.invite(db.session, owner.account, owner, "invitee@example.com", "member", now=NOW,
                                        max_age=timedelta(hours=72))
        statement = imports.import_statement(db.session, camt([{"amount": "12.00", "ref": "M-1", "text": "?"}]),
                                             format="camt053", filename="m.xml", seller=SELLER, now=NOW)
        mapping = bank_mappings.save(db.session, Mapping(name="Matrix bank", date_column="Date", text_column="Text"),
                                     now=NOW, by=None)
        values = {"bank_import": statement.bank_import.id, "bank_line": statement.lines[0].line.id,
                  "mapping": mapping.id, "ticket": world["ticket"], "file": message.attachments[0].id,
                  "member": member.id,
                  "account": world["account"], "order": awaited.id, "payment": payment.id, "invoice": invoice.id,
                  "overage": asked["overage"], "asked": asked["ticket"], "invitation": invitation.id,
                  "message": db.session.scalar(select(func.max(OutboxMessage.id)))}
        values.update(matrix_quotes(owner))
    resolve(app, world["ticket"])
    return values


def matrix_quotes(owner: User) -> dict:
    """Acme's quote, sent; a visitor's, sent, with the token of its link."""
    load_preset(db.session, "itsupport")
    pooled = db.session.scalar(select(Pack).where(Pack.slug == "itsupport-team-tickets"))
    clerk = db.session.scalar(select(User).where(User.is_staff.is_(True)))
    asked = {"name": "Vic Visitor", "email": "vic@example.com", "company": "", "country": "FR", "language": "en",
             "message": "", "quantity": 20, "now": NOW}
    acme = quotes.request_quote(db.session, pooled, requester=owner, **asked)
    visitor = quotes.request_quote(db.session, pooled, requester=None, **asked)
    terms = {"by": clerk, "unit_price": 3800, "quantity": 20, "validity_months": None, "note": "", "now": NOW,
             "valid_until": NOW.date() + timedelta(days=30)}
    quotes.send_quote(db.session, acme, **terms)
    token = quotes.send_quote(db.session, visitor, **terms)
    return {"quote": acme.id, "quote_token": token}


def as_role(app, client, people, role):
    if role != "anon":
        email = {"other": "other@example.com", "admin": people["staff"], "agent": "agent@example.com",
                 "deactivated": "gone@example.com"}.get(role, people.get(role))
        assert login(client, email).status_code == 302
    if role == "deactivated":  # deactivated once logged in: the session ends at once
        with app.app_context():
            db.session.scalar(select(User).where(User.email == "gone@example.com")).removed_at = NOW
            db.session.commit()


def wanted(expected: dict, role: str):
    """What the row says ``role`` gets (see MATRIX)."""
    fallback = {"agent": "admin", "deactivated": "anon"}
    return expected[role] if role in expected else expected[fallback[role]]


def check(response, wanted, values: dict) -> None:
    if wanted == "login":
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    elif isinstance(wanted, str):
        assert (response.status_code, response.headers.get("Location")) == (302, wanted.format(**values))
    else:
        assert response.status_code == wanted
    if wanted == 404:
        assert "Site down" not in text(response) and "It shows an error" not in text(response)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url, expected", MATRIX, ids=[url for url, _ in MATRIX])
def test_who_may_see_each_portal_url(matrix, role, url, expected):
    client = matrix.client
    as_role(matrix.app, client, matrix.people, role)
    for headers in ({}, {"HX-Request": "true"}):  # an htmx fragment is the page's: the same answer
        with client.get(url.format(**matrix.values), headers=headers) as response:
            response.get_data()
        check(response, wanted(expected, role), matrix.values)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url, expected", POSTS, ids=[url for url, _ in POSTS])
def test_who_may_post_to_each_portal_url(matrix, role, url, expected):
    app, client = matrix.app, matrix.client
    as_role(app, client, matrix.people, role)
    token = csrf_token(client, {"anon": "/login", "deactivated": "/login", "agent": "/staff/", "admin": "/staff/"}
                       .get(role, "/portal/"))
    before = snapshot(app)
    response = client.post(url.format(**matrix.values), data={"csrf_token": token})
    check(response, wanted(expected, role), matrix.values)
    if wanted(expected, role) in ("login", 403, 404, 422):
        assert snapshot(app) == before  # refused, or a form refused: nothing written


def test_the_kinds_follow_the_balance_chosen(app, client, people, world):
    with app.app_context():
        load_preset(db.session, "innova")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "innova-60"))
        ledger.grant(db.session, owner.account, pack, key="innova-60", now=NOW)
        innova = f"{pack.policy_id}-credit"
    login(client, people["member"])
    fragment = client.get(f"/portal/tickets/new?balance={innova}", headers={"HX-Request": "true"})
    assert text(fragment).lstrip().startswith('<div id="kind-field">') and 'value="intervention"' in text(fragment)
    response = new_ticket(client, balance=innova, kind="intervention")
    assert response.status_code == 302
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.subject == "Printer"))
        assert (ticket.policy.slug, ticket.kind) == ("innova-credits", "intervention")
