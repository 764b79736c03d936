"""Staff and roles (issue 14.1): the staff home, the team page (invite,
change a role, deactivate, reactivate), the audit log, and who may use them."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from billing.accounts.models import LoginSession, User
from billing.audit import AuditEntry
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.test_security import snapshot


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    return {**smtp_server.config, "MAIL_DELIVER_IN_BACKGROUND": False}


@pytest.fixture
def agent(app, people) -> str:
    with app.app_context():
        accounts.create_staff(db.session, "Abe Agent", "agent@example.com", PASSWORD, role="agent")
    return "agent@example.com"


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def logged_in(app, email: str):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def user_id(app, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def entries(app) -> list[tuple]:
    with app.app_context():
        return [(e.actor.email if e.actor else None, e.action, e.subject_id, e.before, e.after)
                for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# --- The staff home ---------------------------------------------------------------

def test_staff_land_on_the_hub_after_logging_in(app, people):
    client = app.test_client()
    response = login(client, people["staff"])
    assert response.headers["Location"] == "/portal/"
    assert client.get("/portal/").headers["Location"] == "/staff/"
    page = text(client.get("/staff/"))
    assert "<h1>Back office</h1>" in page and 'href="/staff/"' in page.split("<main", 1)[0]


def test_the_hub_links_to_every_area_the_role_opens_and_each_opens(app, people, agent):
    admin, agent_client = logged_in(app, people["staff"]), logged_in(app, agent)
    admin_page, agent_page = text(admin.get("/staff/")), text(agent_client.get("/staff/"))
    for href in ("/desk/", "/portal/staff/orders", "/staff/clients", "/staff/team", "/staff/audit"):
        assert f'href="{href}"' in admin_page, href
    assert 'href="/desk/"' in agent_page and 'href="/portal/staff/orders"' in agent_page
    assert 'href="/staff/team"' not in agent_page and 'href="/staff/audit"' not in agent_page
    for client, page in ((admin, admin_page), (agent_client, agent_page)):
        main = page.split('<main id="main"', 1)[1]
        for href in re.findall(r'class="hub-card" href="(/[^"]*)"', main):
            assert client.get(href).status_code == 200, href


def test_the_hub_in_french(app, people):
    client = logged_in(app, people["staff"])
    post_form(client, "/language", {"lang": "fr", "next": "/staff/"})
    page = text(client.get("/staff/"))
    assert "Gestion des tickets" in page and "Journal d'audit" in page and "Équipe" in page


# --- Inviting -------------------------------------------------------------------------

def test_an_admin_invites_an_agent_who_chooses_a_password_and_logs_in(app, people, smtp_server):  # noqa: F811
    admin = logged_in(app, people["staff"])
    response = post_form(admin, "/staff/team/invite", {"name": "Nina New", "email": "Nina@Example.com",
                                                       "role": "agent", "language": "fr"})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/team"
    page = text(admin.get("/staff/team"))
    assert "Invitation sent to nina@example.com" in page and "Invited" in page

    [mail] = smtp_server.to("nina@example.com")
    assert mail["Subject"] == "Rejoignez l'équipe de Forfait Demo Support"
    link = urlsplit(smtp_server.last_link("nina@example.com", "/password/reset/")).path
    # Before choosing a password, nobody logs in as Nina.
    assert login(app.test_client(), "nina@example.com", "x" * 10).status_code == 422
    nina = app.test_client()
    assert nina.get(link).status_code == 200
    chosen = {"password": "a fine new password", "confirm": "a fine new password"}
    assert post_form(nina, link, chosen).status_code == 302
    assert login(nina, "nina@example.com", "a fine new password").status_code == 302
    assert nina.get("/staff/").status_code == 200 and nina.get("/staff/team").status_code == 403
    assert "Active" in text(admin.get("/staff/team"))
    new_id = user_id(app, "nina@example.com")
    assert entries(app) == [("staff@example.com", "staff.invite", new_id, None,
                             {"email": "nina@example.com", "name": "Nina New", "role": "agent", "active": True})]


def test_the_link_can_be_sent_again_until_a_password_is_chosen(app, people, smtp_server):  # noqa: F811
    admin = logged_in(app, people["staff"])
    post_form(admin, "/staff/team/invite", {"name": "Nina New", "email": "nina@example.com", "role": "agent",
                                            "language": "en"})
    nina = user_id(app, "nina@example.com")
    assert post_form(admin, f"/staff/team/{nina}/resend").status_code == 302
    assert len(smtp_server.to("nina@example.com")) == 2
    link = urlsplit(smtp_server.last_link("nina@example.com", "/password/reset/")).path
    post_form(app.test_client(), link, {"password": "a fine new password", "confirm": "a fine new password"})
    before = snapshot(app)
    refused = post_form(admin, f"/staff/team/{nina}/resend")
    assert refused.status_code == 422 and "Nina New has already chosen a password." in text(refused)
    assert snapshot(app) == before


@pytest.mark.parametrize("fields, message", [
    ({"email": "owner@example.com"}, "Someone already uses this address (staff or client)."),
    ({"email": "STAFF@example.com"}, "Someone already uses this address (staff or client)."),
    ({"email": "not an address"}, "Invalid email address."),
    ({"role": "owner"}, "Not a valid choice."),
    ({"name": ""}, "This field is required."),
    ({"name": "x" * 201}, "Field cannot be longer than 200 characters."),
])
def test_a_bad_invitation_gets_a_message_a_422_and_writes_nothing(app, people, fields, message):
    admin = logged_in(app, people["staff"])
    before = snapshot(app)
    response = post_form(admin, "/staff/team/invite", {"name": "Nina", "email": "nina@example.com", "role": "agent",
                                                       "language": "en", **fields})
    assert response.status_code == 422 and message in text(response)
    assert snapshot(app) == before


# --- Roles ----------------------------------------------------------------------------

def test_an_admin_changes_a_role_and_the_log_says_before_and_after(app, people, agent):
    admin, agent_client = logged_in(app, people["staff"]), logged_in(app, agent)
    abe = user_id(app, agent)
    assert agent_client.get("/staff/team").status_code == 403
    assert post_form(admin, f"/staff/team/{abe}/role", {"role": "admin"}).status_code == 302
    assert "Abe Agent is now administrator." in text(admin.get("/staff/team"))
    assert agent_client.get("/staff/team").status_code == 200  # the new role counts at the next request
    assert post_form(admin, f"/staff/team/{abe}/role", {"role": "agent"}).status_code == 302
    assert [e[1:] for e in entries(app)] == [("staff.role", abe, {"role": "agent"}, {"role": "admin"}),
                                             ("staff.role", abe, {"role": "admin"}, {"role": "agent"})]
    # The same role again changes nothing and writes nothing.
    before = snapshot(app)
    assert post_form(admin, f"/staff/team/{abe}/role", {"role": "agent"}).status_code == 302
    assert snapshot(app) == before


def test_the_last_active_admin_cannot_demote_nor_deactivate_themselves(app, people, agent):
    admin = logged_in(app, people["staff"])
    sam = user_id(app, people["staff"])
    before = snapshot(app)
    for response in (post_form(admin, f"/staff/team/{sam}/role", {"role": "agent"}),
                     post_form(admin, f"/staff/team/{sam}/deactivate")):
        assert response.status_code == 422
        assert "Sam Staff is the last active administrator: make someone else an administrator first." in text(
            response)
    assert snapshot(app) == before
    # With a second admin, they may step down.
    post_form(admin, f"/staff/team/{user_id(app, agent)}/role", {"role": "admin"})
    assert post_form(admin, f"/staff/team/{sam}/role", {"role": "agent"}).status_code == 302
    assert admin.get("/staff/team").status_code == 403


def test_a_deactivated_admin_does_not_count_as_the_other_admin(app, people, agent):
    admin = logged_in(app, people["staff"])
    abe, sam = user_id(app, agent), user_id(app, people["staff"])
    post_form(admin, f"/staff/team/{abe}/role", {"role": "admin"})
    post_form(admin, f"/staff/team/{abe}/deactivate")
    assert post_form(admin, f"/staff/team/{sam}/role", {"role": "agent"}).status_code == 422


# --- Deactivating ---------------------------------------------------------------------

def test_a_deactivated_members_sessions_end_at_once_and_they_cannot_log_in(app, people, agent):
    admin = logged_in(app, people["staff"])
    phone, laptop = logged_in(app, agent), logged_in(app, agent)
    abe = user_id(app, agent)
    assert phone.get("/desk/").status_code == 200

    response = post_form(admin, f"/staff/team/{abe}/deactivate")

    assert response.status_code == 302
    assert "Abe Agent is deactivated" in text(admin.get("/staff/team"))
    for client in (phone, laptop):
        assert client.get("/desk/").headers["Location"].startswith("/login")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginSession).where(
            LoginSession.user_id == abe, LoginSession.ended_at.is_(None))) == 0
    assert login(app.test_client(), agent).status_code == 422
    assert [e[1:] for e in entries(app)] == [("staff.deactivate", abe, {"active": True},
                                              {"active": False, "logins_ended": 2})]

    assert post_form(admin, f"/staff/team/{abe}/reactivate").status_code == 302
    assert "Abe Agent can log in again." in text(admin.get("/staff/team"))
    assert login(app.test_client(), agent).status_code == 302
    assert entries(app)[-1][1:] == ("staff.reactivate", abe, {"active": False}, {"active": True})


def test_an_admin_who_deactivates_themselves_is_logged_out(app, people, agent):
    admin = logged_in(app, people["staff"])
    sam = user_id(app, people["staff"])
    post_form(admin, f"/staff/team/{user_id(app, agent)}/role", {"role": "admin"})
    response = post_form(admin, f"/staff/team/{sam}/deactivate")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert admin.get("/staff/").headers["Location"].startswith("/login")


def test_clients_and_unknown_ids_are_not_staff(app, people):
    admin = logged_in(app, people["staff"])
    owner = user_id(app, people["owner"])
    before = snapshot(app)
    for path in (f"/staff/team/{owner}/deactivate", f"/staff/team/{owner}/role", "/staff/team/999999/deactivate",
                 f"/staff/team/{owner}/reactivate", f"/staff/team/{owner}/resend"):
        assert post_form(admin, path, {"role": "agent"}).status_code == 404, path
    assert snapshot(app) == before


# --- The audit log ----------------------------------------------------------------------

def test_the_audit_log_filters_by_person_and_object_and_pages(app, people, agent):
    from billing import audit
    from billing.transaction import atomic

    admin = logged_in(app, people["staff"])
    abe, sam = user_id(app, agent), user_id(app, people["staff"])
    post_form(admin, f"/staff/team/{abe}/role", {"role": "admin"})
    with app.app_context():
        actor = db.session.get(User, abe)
        with atomic(db.session):
            for n in range(60):
                audit.record(actor, "pack.update", "pack", n % 3, before={"price": n}, after={"price": n + 1})

    page = text(admin.get("/staff/audit"))
    assert "Page 1 of 2" in page and "price" in page and "60 → 61" not in page
    assert "<del>59</del> → <ins>60</ins>" in page  # newest first
    assert "Role changed" not in page
    second = text(admin.get("/staff/audit?page=2"))
    assert "Role changed" in second and "<del>Agent</del> → <ins>Administrator</ins>" in second

    by_sam = text(admin.get(f"/staff/audit?person={sam}"))
    assert "Role changed" in by_sam and "Pack #" not in by_sam
    pack_one = text(admin.get("/staff/audit?kind=pack&id=1"))
    assert pack_one.count("Pack #1<") == 20 and "Pack #2" not in pack_one and "Page" not in pack_one
    assert "Nothing matches these filters." in text(admin.get("/staff/audit?kind=nothing"))
    for query in ("?page=x", "?page=99999999999", "?person=-1", "?id=1e3", "?kind=" + "k" * 500):
        assert admin.get("/staff/audit" + query).status_code == 200, query


def test_the_audit_log_in_french(app, people, agent):
    admin = logged_in(app, people["staff"])
    post_form(admin, f"/staff/team/{user_id(app, agent)}/role", {"role": "admin"})
    post_form(admin, "/language", {"lang": "fr", "next": "/staff/audit"})
    page = text(admin.get("/staff/audit"))
    assert "Rôle modifié" in page and "<del>Agent</del> → <ins>Administrateur</ins>" in page
    # The link to the object's page is a verb, not the ticket status "Ouvert" that shares its English word.
    assert re.search(r'<small><a href="/[^"]*">Ouvrir</a></small>', page) and ">Ouvert</a>" not in page


def test_the_audit_log_reads_times_on_the_providers_clock(app, people, agent):
    """03:06 UTC on a December day is 04:06 in Paris (the default zone) and
    22:06 the day before in New York once the provider says so."""
    from datetime import UTC, datetime

    from billing.service import levels

    admin = logged_in(app, people["staff"])
    post_form(admin, f"/staff/team/{user_id(app, agent)}/role", {"role": "admin"})
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry)).one()
        entry.at = datetime(2026, 12, 6, 3, 6, tzinfo=UTC)
        db.session.commit()
    # Written like every other time of the back office (common.i18n.moment), not "12/6/26, 4:06".
    assert "Dec 6, 2026 4:06\u202fAM" in text(admin.get("/staff/audit"))
    with app.app_context():
        settings = levels.read_settings("America/New_York", {"monday": "09:00-17:00"},
                                        {"critical": "1", "high": "4", "normal": "8", "low": "24"})
        levels.save_settings(db.session, settings, None, datetime(2026, 12, 6, tzinfo=UTC))
        db.session.commit()
    assert "Dec 5, 2026 10:06\u202fPM" in text(admin.get("/staff/audit"))


# --- Two admins at once ----------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(app, people):
    from sqlalchemy.orm import Session

    from common.identity import staff
    from tests.test_ledger_concurrency import at_once

    with app.app_context():
        sam = db.session.scalar(select(User.id).where(User.email == people["staff"]))
        ada = accounts.create_staff(db.session, "Ada Admin", "ada@example.com", PASSWORD).id
    pairs = [(sam, ada), (ada, sam)]

    def demote(session: Session, i: int):
        actor, target = (session.get(User, n) for n in pairs[i % 2])
        with app.app_context():
            return staff.change_role(session, target, "agent", by=actor)

    results = at_once(app, demote, threads=2)

    assert sorted(map(type, results), key=str) == sorted([bool, staff.StaffError], key=str), results
    with app.app_context():
        admins = db.session.scalars(select(User.email).where(User.role == "admin")).all()
        assert len(admins) == 1
        assert [e[1] for e in entries(app)] == ["staff.role"]


def test_the_audit_log_names_objects_in_words_and_opens_their_page(app, people, agent):
    from billing import audit
    from billing.accounts.models import Account
    from billing.transaction import atomic

    admin = logged_in(app, people["staff"])
    abe = user_id(app, agent)
    post_form(admin, f"/staff/team/{abe}/role", {"role": "admin"})
    with app.app_context():
        acme = db.session.scalar(select(Account.id).where(Account.name == "Acme"))
        actor = db.session.get(User, abe)
        with atomic(db.session):
            audit.record(actor, "account.invoicing", "account", acme, before={"vat_id": ""}, after={"vat_id": "FR1"})
            audit.record(actor, "bank.discard", "bank_line", 7, before={"status": "unmatched"})
    page = text(admin.get("/staff/audit"))
    assert f"Account #{acme}</a>" in page
    assert "Invoicing details changed" in page and "Bank statement line #7" in page
    links = re.findall(r'<small><a href="(/[^"]*)">Open</a></small>', page)
    assert f"/staff/clients/{acme}" in links and f"/staff/team#member-{abe}" in links
    assert len(links) == 2  # a bank line has no page of its own
    for link in links:
        assert admin.get(link).status_code == 200, link
