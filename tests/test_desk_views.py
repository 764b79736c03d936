"""The staff desk (portal.desk) and the owner's answer to an overage
(portal.overages): the queue and who reaches it, the staff ticket page, the
live preview of a charge, time logged and charged, the overage modes, and
resolution."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from conftest import PASSWORD, csrf_token, login, post_form
from ledger_support import pack
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.desk import services as desk
from billing.desk.models import Ticket, TimeEntry
from billing.ledger import services as ledger
from billing.ledger.models import Event, Overage
from common.extensions import db
from common.identity import accounts

HX = {"HX-Request": "true"}


def now() -> datetime:
    return datetime.now(UTC)


def _user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def grant(slug: str, email: str = "owner@example.com") -> None:
    """A pack of the seed catalogue for the account of ``email``, bought now."""
    account = _user(email).account
    ledger.grant(db.session, account, pack(db.session, slug), key=f"grant-{slug}-{account.id}-{now().timestamp()}",
                 now=now())


def open_ticket(slug: str, email: str = "owner@example.com", kind: str | None = None, criticality: str = "normal",
                at: datetime | None = None, subject: str = "Site down") -> int:
    user = _user(email)
    ticket = desk.open_ticket(db.session, user.account, user, subject, "It shows an error.", now=at or now(),
                              policy=pack(db.session, slug).policy, kind=kind, criticality=criticality)
    return ticket.id


def ticket(ticket_id: int) -> Ticket:
    db.session.expire_all()
    return db.session.get(Ticket, ticket_id)


def held(slug: str, email: str = "owner@example.com") -> ledger.Balance:
    policy = pack(db.session, slug).policy
    return ledger.balance(db.session, _user(email).account_id, policy.id, policy.unit, now=now())


def form_key(page: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', page)
    assert found, "no idempotency key on the form"
    return found.group(1)


def log(client, ticket_id: int, minutes: int, billable: bool = True, note: str = "", key: str | None = None):
    """Log time as staff do: the key the rendered form carries, then POST."""
    if key is None:
        key = form_key(client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True))
    data = {"minutes": str(minutes), "note": note, "key": key, "action": "save"}
    if billable:
        data["billable"] = "1"
    return post_form(client, f"/desk/tickets/{ticket_id}/time", data)


def preview(client, ticket_id: int, minutes: int, billable: bool = True) -> str:
    query = {"minutes": minutes, **({"billable": "1"} if billable else {})}
    response = client.get(f"/desk/tickets/{ticket_id}/preview", query_string=query, headers=HX)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


@pytest.fixture
def staff_client(app, client, people):
    login(client, people["staff"])
    return client


# ------------------------------------------------------------------ who may come

@pytest.fixture
def other_account(app, people) -> str:
    with app.app_context():
        accounts.register(db.session, "Rival", "Rita Rival", "rival@example.com", PASSWORD, "en", "FR")
    return "rival@example.com"


@pytest.mark.parametrize("method, path, for_staff", [
    ("get", "/desk/", 200),
    ("get", "/desk/tickets/{id}", 200),
    ("get", "/desk/tickets/{id}/preview?minutes=10&billable=1", 200),
    ("post", "/desk/tickets/{id}/time", 302),
    ("post", "/desk/tickets/{id}/assign", 302),
    ("post", "/desk/tickets/{id}/messages", 302),
    ("post", "/desk/tickets/{id}/status", 302),
    ("post", "/desk/tickets/{id}/resolve", 302),
])
@pytest.mark.parametrize("who", [None, "owner", "member", "rival", "staff"])
def test_only_staff_reach_the_desk(app, client, people, other_account, method, path, for_staff, who):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    emails = {**people, "rival": other_account}
    if who:
        login(client, emails[who])
    url = path.format(id=ticket_id)
    if method == "get":
        response = client.get(url)
    else:
        data = {"csrf_token": csrf_token(client), "minutes": "5", "key": "k" * 22, "billable": "1", "to": "me",
                "body": "hello", "status": "in_progress"}
        response = client.post(url, data=data)
    if who is None:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    elif who == "staff":
        assert response.status_code == for_staff
        if for_staff == 302:
            assert response.headers["Location"].startswith(f"/desk/tickets/{ticket_id}")
    else:
        assert response.status_code == 403
    with app.app_context():
        # Nobody but staff wrote anything.
        entries = db.session.scalar(select(func.count()).select_from(TimeEntry))
        assert entries == (1 if who == "staff" and url.endswith("/time") else 0)


def test_an_unknown_ticket_is_404_for_staff(staff_client):
    assert staff_client.get("/desk/tickets/999").status_code == 404


def test_staff_see_the_desk_in_the_menu_and_clients_do_not(app, client, people):
    login(client, people["owner"])
    assert "/desk/" not in client.get("/portal/").get_data(as_text=True)
    post_form(client, "/logout")
    login(client, people["staff"])
    assert 'href="/desk/"' in client.get("/staff/").get_data(as_text=True)


# ------------------------------------------------------------------ queue

def _queue_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="queue-ticket-(\d+)"', page)]


def test_queue_most_critical_then_oldest_across_accounts(app, staff_client, other_account):
    start = now() - timedelta(days=3)
    with app.app_context():
        grant("toopixel-36")
        grant("toopixel-36", other_account)
        old_normal = open_ticket("toopixel-36", criticality="normal", at=start)
        new_critical = open_ticket("toopixel-36", other_account, criticality="critical", at=start + timedelta(days=2))
        old_critical = open_ticket("toopixel-36", criticality="critical", at=start + timedelta(days=1))
        low = open_ticket("toopixel-36", other_account, criticality="low", at=start)
        high = open_ticket("toopixel-36", criticality="high", at=start + timedelta(days=2))
        done = open_ticket("toopixel-36", criticality="critical", at=start)
        clerk = _user("staff@example.com")
        desk.set_status(db.session, ticket(done), "resolved", by=clerk, now=now())
        desk.post_message(db.session, ticket(old_normal), clerk, "On it", now=start + timedelta(hours=2))
    page = staff_client.get("/desk/").get_data(as_text=True)
    assert _queue_ids(page) == [old_critical, new_critical, high, old_normal, low]
    assert "answered in 2 hours" in page
    assert "waiting for 2 days" in page  # the critical one opened a day later, never answered
    assert f'href="/desk/tickets/{old_critical}"' in page


def test_queue_filters_and_fragment(app, staff_client, other_account):
    with app.app_context():
        grant("toopixel-36")
        grant("toopixel-36", other_account)
        mine = open_ticket("toopixel-36")
        theirs = open_ticket("toopixel-36", other_account)
        waiting = open_ticket("toopixel-36")
        clerk = _user("staff@example.com")
        desk.assign(db.session, ticket(mine), clerk, by=clerk, now=now())
        desk.set_status(db.session, ticket(waiting), "waiting", by=clerk, now=now())
        rival_account = _user(other_account).account_id
    assert _queue_ids(staff_client.get("/desk/?who=mine").get_data(as_text=True)) == [mine]
    assert _queue_ids(staff_client.get("/desk/?who=unassigned").get_data(as_text=True)) == [theirs, waiting]
    assert _queue_ids(staff_client.get(f"/desk/?account={rival_account}").get_data(as_text=True)) == [theirs]
    assert _queue_ids(staff_client.get("/desk/?status=waiting").get_data(as_text=True)) == [waiting]
    fragment = staff_client.get("/desk/?status=waiting", headers=HX)
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="queue"')
    assert "<html" not in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


def test_assign_to_me_from_a_row_and_to_someone(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
        colleague = accounts.create_staff(db.session, "Cleo Colleague", "cleo@example.com", PASSWORD)
        colleague_id = colleague.id
    token = csrf_token(staff_client, "/desk/")
    row = staff_client.post(f"/desk/tickets/{ticket_id}/assign", headers=HX,
                            data={"csrf_token": token, "to": "me", "row": "1", "next": "/desk/"})
    body = row.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="queue-ticket-{ticket_id}"')
    with app.app_context():
        assert ticket(ticket_id).assigned_to.email == "staff@example.com"
    # Without JavaScript: the same form, back to where it came from.
    response = staff_client.post(f"/desk/tickets/{ticket_id}/assign",
                                 data={"csrf_token": token, "to": str(colleague_id), "next": "/desk/?who=mine"})
    assert response.headers["Location"] == "/desk/?who=mine"
    with app.app_context():
        assert ticket(ticket_id).assigned_to_id == colleague_id
    # Not a staff member, not another site.
    with app.app_context():
        client_id = _user("owner@example.com").id
    assert staff_client.post(f"/desk/tickets/{ticket_id}/assign",
                             data={"csrf_token": token, "to": str(client_id)}).status_code == 400
    response = staff_client.post(f"/desk/tickets/{ticket_id}/assign",
                                 data={"csrf_token": token, "to": "", "next": "//evil.example/"})
    assert response.headers["Location"] == f"/desk/tickets/{ticket_id}"


# ------------------------------------------------------------------ the ticket page

def test_ticket_page_shows_thread_notes_balance_entries_and_cost(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    post_form(staff_client, f"/desk/tickets/{ticket_id}/messages", {"body": "Checked the logs", "internal": "1"})
    post_form(staff_client, f"/desk/tickets/{ticket_id}/messages", {"body": "Fixed, please check", "internal": "0"})
    log(staff_client, ticket_id, 12, note="diagnosis")
    log(staff_client, ticket_id, 20, billable=False, note="emails")
    page = staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
    assert "Internal note" in page and "Checked the logs" in page
    assert "12 min → 2 blocks of 10 min → 2 credits" in page
    assert "34 credits left" in page
    assert "diagnosis" in page and "emails" in page and "not billable" in page
    assert "Sam Staff" in page
    with app.app_context():
        found = ticket(ticket_id)
        assert found.first_response_at is not None
        client_view = desk.thread(db.session, found, internal=False)
        assert [m.body for m in client_view] == ["It shows an error.", "Fixed, please check"]


def test_a_reply_without_text_is_refused(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    response = post_form(staff_client, f"/desk/tickets/{ticket_id}/messages", {"body": "  ", "internal": "0"})
    assert response.status_code == 422
    assert "Write a message." in response.get_data(as_text=True)


# ------------------------------------------------------------------ preview

def test_preview_toopixel_12_plus_15(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    log(staff_client, ticket_id, 12)
    assert "+15 min → total 27 min → 3 credits, 1 more than now" in preview(staff_client, ticket_id, 15)
    assert "+5 min → total 17 min → 2 credits, no change" in preview(staff_client, ticket_id, 5)
    assert "+15 min → not charged" in preview(staff_client, ticket_id, 15, billable=False)


def test_preview_without_javascript_is_the_page_with_the_same_text(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    log(staff_client, ticket_id, 12)
    page = staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
    key = form_key(page)
    response = post_form(staff_client, f"/desk/tickets/{ticket_id}/time",
                         {"minutes": "15", "billable": "1", "note": "fix", "key": key, "action": "preview"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "+15 min → total 27 min → 3 credits, 1 more than now" in body
    assert form_key(body) == key and 'value="fix"' in body
    with app.app_context():
        assert ticket(ticket_id).billable_minutes == 12  # a preview writes nothing
    # The preview URL asked without htmx is the page too.
    page = staff_client.get(f"/desk/tickets/{ticket_id}/preview?minutes=15&billable=1").get_data(as_text=True)
    assert "<html" in page and "+15 min → total 27 min → 3 credits, 1 more than now" in page


def test_preview_itsupport_25_plus_15_takes_a_second_ticket(app, staff_client):
    with app.app_context():
        grant("itsupport-tickets-20")
        ticket_id = open_ticket("itsupport-tickets-20")
    log(staff_client, ticket_id, 25)
    text = preview(staff_client, ticket_id, 15)
    assert "+15 min → total 40 min → 2 tickets, 1 more than now" in text
    assert "The work passes 30 min: this subject will use 2 tickets in all." in text
    assert "second" not in preview(staff_client, ticket_id, 5) and "passes" not in preview(staff_client, ticket_id, 5)


def test_preview_digitale_communication_is_not_charged(app, staff_client):
    with app.app_context():
        grant("digitale-3h")
        ticket_id = open_ticket("digitale-3h", kind="communication")
    assert "+20 min → total 20 min → not charged" in preview(staff_client, ticket_id, 20)
    log(staff_client, ticket_id, 20, note="brief by video")
    with app.app_context():
        assert (ticket(ticket_id).billable_minutes, ticket(ticket_id).units_charged) == (20, 0)
        assert held("digitale-3h").units == 180


# ------------------------------------------------------------------ log time

@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_log_time_charges_the_ticket_total_once(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    for minutes in (10, 10, 7):
        response = log(staff_client, ticket_id, minutes)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/desk/tickets/{ticket_id}#time"
    with app.app_context():
        found = ticket(ticket_id)
        assert (found.billable_minutes, found.units_charged) == (27, 3)
        assert held("toopixel-36").units == 33
        assert len(desk.time_entries(db.session, found)) == 3
    page = staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
    assert "27 min → 3 blocks of 10 min → 3 credits" in page


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_double_submit_logs_once(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    key = form_key(staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True))
    assert log(staff_client, ticket_id, 27, key=key).status_code == 302
    assert log(staff_client, ticket_id, 27, key=key).status_code == 302
    with app.app_context():
        assert len(desk.time_entries(db.session, ticket(ticket_id))) == 1
        assert held("toopixel-36").units == 33
    # Each rendering of the form carries a new key.
    assert form_key(staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)) != key


def test_bad_minutes_and_a_missing_key_write_nothing(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    for minutes in ("", "0", "-5", "abc", "100000"):
        response = log(staff_client, ticket_id, minutes)  # type: ignore[arg-type]
        assert response.status_code == 422, minutes
        assert "Enter whole minutes" in response.get_data(as_text=True)
    response = log(staff_client, ticket_id, 10, key="")
    assert response.status_code == 422
    assert "out of date" in response.get_data(as_text=True)
    with app.app_context():
        assert desk.time_entries(db.session, ticket(ticket_id)) == []


def test_a_key_sent_to_another_ticket_is_refused(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        first, second = open_ticket("toopixel-36"), open_ticket("toopixel-36")
    key = form_key(staff_client.get(f"/desk/tickets/{first}").get_data(as_text=True))
    assert log(staff_client, first, 10, key=key).status_code == 302
    response = log(staff_client, second, 10, key=key)
    assert response.status_code == 422
    assert "already used on another ticket" in response.get_data(as_text=True)
    with app.app_context():
        assert desk.time_entries(db.session, ticket(second)) == []


# ------------------------------------------------------------------ overage

def test_block_says_what_is_missing_and_writes_nothing(app, staff_client):
    with app.app_context():
        grant("innova-15")
        ticket_id = open_ticket("innova-15", kind="intervention")
    assert "lacks 60 credits" in preview(staff_client, ticket_id, 61)
    response = log(staff_client, ticket_id, 61)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Not saved: 60 credits missing. The balance holds 15 credits" in body
    assert 'value="61"' in body
    with app.app_context():
        assert desk.time_entries(db.session, ticket(ticket_id)) == []
        assert ticket(ticket_id).units_charged == 0
        assert held("innova-15").units == 15


def _mails(tmp_path: Path) -> list:
    folder = tmp_path / "mail"
    return [message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in sorted(folder.glob("*.eml"))] \
        if folder.exists() else []


def test_ask_records_a_request_and_tells_the_owners(app, staff_client, people, tmp_path):
    with app.app_context():
        grant("digitale-3h")
        ticket_id = open_ticket("digitale-3h", email=people["member"], kind="production")
    assert "asks the account's owner" in preview(staff_client, ticket_id, 200)
    response = log(staff_client, ticket_id, 200, note="new page")
    assert response.status_code == 302
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "20 min beyond the balance await the owner" in page
    assert "the account&#39;s owners are asked to approve (1 told by email)" in page
    with app.app_context():
        found = ticket(ticket_id)
        [overage] = found.overages
        assert (overage.status, overage.units) == ("pending", 20)
        assert overage.price == 2167  # 20 min at 65.00 an hour
        event = db.session.scalar(select(Event).where(Event.overage_id == overage.id))
        assert event.notified_at is not None
        assert held("digitale-3h").units == 0
    [mail] = [m for m in _mails(tmp_path) if "approval" in m["Subject"]]
    assert mail["To"] == people["owner"]
    text = mail.get_body(("plain",)).get_content()
    assert "beyond your balance by 20 min" in text and "€21.67" in text
    assert f"/portal/tickets/{ticket_id}" in text


@pytest.mark.parametrize("answer, status", [("approve", "approved"), ("decline", "declined")])
def test_only_an_owner_of_the_account_answers(app, client, people, other_account, answer, status):
    with app.app_context():
        grant("digitale-3h")
        ticket_id = open_ticket("digitale-3h", kind="production")
        desk.log_time(db.session, ticket(ticket_id), _user(people["staff"]), 200, True, "", "k-ask", now())
        overage_id = ticket(ticket_id).overages[0].id
    url = f"/portal/overages/{overage_id}/{answer}"
    assert client.post(url).status_code == 400  # anonymous and without a CSRF token: refused before the view
    response = post_form(client, url)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    for who, expected in (("rival", 404), ("member", 403), ("staff", 404)):
        login(client, {**people, "rival": other_account}[who])
        assert post_form(client, url).status_code == expected, who
        post_form(client, "/logout")
    login(client, people["owner"])
    response = post_form(client, url, {"next": "/portal/"})
    assert response.headers["Location"] == "/portal/"
    with app.app_context():
        overage = db.session.get(Overage, overage_id)
        assert overage.status == status
        assert overage.decided_by_id == _user(people["owner"]).id


def test_allow_records_a_debt_and_warns_staff(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        policy = pack(db.session, "toopixel-36").policy
        policy.overage_mode = "allow"
        db.session.commit()
        ticket_id = open_ticket("toopixel-36")
    assert "recorded as debt" not in preview(staff_client, ticket_id, 300)
    assert "saving records them as debt" in preview(staff_client, ticket_id, 400)
    response = log(staff_client, ticket_id, 400)
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Warning: 4 credits beyond the balance recorded as debt" in page
    assert "4 credits owed" in page
    with app.app_context():
        balance = held("toopixel-36")
        assert (balance.units, balance.debt) == (0, 4)


# ------------------------------------------------------------------ status and resolution

def test_resolve_with_a_note_makes_the_report(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    log(staff_client, ticket_id, 27, note="plugin updated")
    response = post_form(staff_client, f"/desk/tickets/{ticket_id}/resolve", {"staff_note": "Cache purged."})
    assert response.headers["Location"] == f"/desk/tickets/{ticket_id}"
    page = staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
    assert f'href="/portal/tickets/{ticket_id}/report"' in page
    with app.app_context():
        found = ticket(ticket_id)
        assert (found.status, found.staff_note) == ("resolved", "Cache purged.")
        assert found.resolved_at is not None
    # Resolved tickets leave the queue.
    assert _queue_ids(staff_client.get("/desk/").get_data(as_text=True)) == []


def test_status_and_criticality(app, staff_client):
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36")
    post_form(staff_client, f"/desk/tickets/{ticket_id}/status", {"status": "waiting", "criticality": "high"})
    with app.app_context():
        assert (ticket(ticket_id).status, ticket(ticket_id).criticality) == ("waiting", "high")
    # Staff read that it waits for the client; the client, that it waits for them.
    desk_page = staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
    assert "Waiting for the client" in desk_page and "Waiting for you" not in desk_page
    owner = app.test_client()
    login(owner, "owner@example.com")
    assert "Waiting for you" in owner.get(f"/portal/tickets/{ticket_id}").get_data(as_text=True)
    for nothing_valid in ({"status": "nonsense"}, {}):
        response = post_form(staff_client, f"/desk/tickets/{ticket_id}/status", nothing_valid)
        assert response.status_code == 302
        page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Choose a status from the list." in page and "saved." not in page, nothing_valid
    with app.app_context():
        assert (ticket(ticket_id).status, ticket(ticket_id).criticality) == ("waiting", "high")


def test_the_thread_reads_times_on_the_providers_clock_like_the_rest_of_the_back_office(app, staff_client):
    """23:30 UTC on 6 December is 00:30 on the 7th in Paris (the default zone):
    the thread said "Dec 7, 2026 23:30 UTC", the day in Paris beside the hour
    in UTC, and an hour off the audit log's and the due time's clock."""
    with app.app_context():
        grant("toopixel-36")
        ticket_id = open_ticket("toopixel-36", at=datetime(2026, 12, 6, 23, 30, tzinfo=UTC))
    page = staff_client.get(f"/desk/tickets/{ticket_id}").get_data(as_text=True)
    assert "Dec 7, 2026 12:30\u202fAM" in page  # CLDR's narrow space before AM
    assert "UTC" not in page
