"""Service levels on the web: the settings page (who may, what is refused
and where it is said), the desk's due times and overdue filter, ratings on
the desk, and the public service page (linked from a catalogue that
promises it, nothing under five tickets, in three languages, cached)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, csrf_token, login, post_form
from ledger_support import pack
from sqlalchemy import select
from test_catalogue import BOTH_ENGINES
from test_security import snapshot

from billing import clock
from billing.accounts.models import User
from billing.audit import AuditEntry
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.service import figures
from billing.service.models import Holiday, ServiceLevels
from common.extensions import db
from common.identity import accounts

# Monday 7 December 2026, 15:00 in Paris.
NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
SETTINGS = {"timezone": "Europe/Paris", "monday": "09:00-12:00, 13:00-18:00", "tuesday": "09:00-18:00",
            "wednesday": "09:00-18:00", "thursday": "09:00-18:00", "friday": "09:00-17:00", "saturday": "",
            "sunday": "", "target_critical": "1", "target_high": "4", "target_normal": "8", "target_low": "24"}


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)
    figures.forget()
    yield
    figures.forget()


def text(response) -> str:
    return response.get_data(as_text=True)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def open_ticket(slug: str, at: datetime, criticality: str = "normal", subject: str = "Printer") -> Ticket:
    owner = user("owner@example.com")
    policy = pack(db.session, slug).policy
    ledger.grant(db.session, owner.account, pack(db.session, slug), key=f"g-{slug}-{at.timestamp()}-{subject}",
                 now=at)
    return desk.open_ticket(db.session, owner.account, owner, subject, "It jams.", now=at, policy=policy,
                            criticality=criticality)


# ------------------------------------------------------------------ settings

def add_agent(app) -> str:
    with app.app_context():
        accounts.create_staff(db.session, "Ada Agent", "agent@example.com", PASSWORD, role="agent")
    return "agent@example.com"


@pytest.mark.parametrize("role, expected", [("anon", "login"), ("owner", 403), ("member", 403), ("agent", 403),
                                            ("staff", 200)])
def test_who_may_see_the_settings(app, client, people, role, expected):
    people["agent"] = add_agent(app)
    if role != "anon":
        login(client, people[role])
    response = client.get("/staff/service-levels")
    if expected == "login":
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    else:
        assert response.status_code == expected


@pytest.mark.parametrize("url", ["/staff/service-levels", "/staff/service-levels/holidays",
                                 "/staff/service-levels/holidays/1/remove"])
@pytest.mark.parametrize("role", ["anon", "owner", "agent"])
def test_refused_posts_write_nothing(app, client, people, url, role):
    people["agent"] = add_agent(app)
    with app.app_context():
        db.session.add(Holiday(day=datetime(2026, 12, 25).date(), name="Christmas", created_at=NOW))
        db.session.commit()
    if role != "anon":
        login(client, people[role])
    token = csrf_token(client, {"anon": "/login", "agent": "/staff/"}.get(role, "/portal/"))
    before = snapshot(app)
    response = client.post(url, data={**SETTINGS, "day": "2026-12-24", "name": "Eve", "csrf_token": token})
    assert response.status_code == (302 if role == "anon" else 403)
    assert snapshot(app) == before


def test_staff_set_the_hours_and_targets(app, client, people):
    login(client, people["staff"])
    page = text(client.get("/staff/service-levels"))
    # The defaults until saved: weekdays 9-12 and 13-18, seed 004's 1 to 24 hours.
    assert 'value="09:00-12:00, 13:00-18:00"' in page and 'value="Europe/Paris"' in page
    response = post_form(client, "/staff/service-levels", {**SETTINGS, "target_critical": "1:30"})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/service-levels"
    with app.app_context():
        row = db.session.get(ServiceLevels, 1)
        assert row.hours[1] == [[540, 1080]] and row.hours[5] == [] and row.targets["critical"] == 90
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "service.levels"))
        assert entry.actor.email == "staff@example.com" and entry.before is None
        assert entry.after["targets"]["critical"] == 90 and entry.after["timezone"] == "Europe/Paris"
    assert 'value="1:30"' in text(client.get("/staff/service-levels"))


def test_bad_settings_are_told_beside_their_field_and_nothing_is_saved(app, client, people):
    login(client, people["staff"])
    response = post_form(client, "/staff/service-levels", {
        **SETTINGS, "timezone": "Mars/Olympus", "tuesday": "09:00-25:00", "target_critical": "30",
        "target_low": "soon"})
    assert response.status_code == 422
    page = text(response)
    assert "Choose a time zone from the list, such as Europe/Paris." in page
    assert "09:00-25:00 is not a time of day." in page
    assert "A more critical request cannot wait longer than a less critical one." in page
    assert "Write a number of hours, such as 4 or 1.5." in page
    assert page.count('aria-invalid="true"') == 4
    with app.app_context():
        assert db.session.get(ServiceLevels, 1) is None
    closed = post_form(client, "/staff/service-levels", {**SETTINGS, **dict.fromkeys(
        ["monday", "tuesday", "wednesday", "thursday", "friday"], "")})
    assert closed.status_code == 422 and "Open at least one day" in text(closed)


def test_holidays_are_added_refused_and_removed(app, client, people):
    login(client, people["staff"])
    assert post_form(client, "/staff/service-levels/holidays", {"day": "2026-12-25", "name": "Christmas"}
                     ).status_code == 302
    twice = post_form(client, "/staff/service-levels/holidays", {"day": "2026-12-25", "name": "Noël"})
    assert twice.status_code == 422 and "This date is already a holiday." in text(twice)
    nameless = post_form(client, "/staff/service-levels/holidays", {"day": "2026-12-26", "name": " "})
    assert nameless.status_code == 422 and "Name the holiday in 1 to 100 characters." in text(nameless)
    dateless = post_form(client, "/staff/service-levels/holidays", {"day": "someday", "name": "Boxing Day"})
    assert dateless.status_code == 422 and "Choose a date." in text(dateless)
    with app.app_context():
        holidays = db.session.scalars(select(Holiday)).all()
        assert [(h.day.isoformat(), h.name) for h in holidays] == [("2026-12-25", "Christmas")]
        holiday_id = holidays[0].id
    assert post_form(client, f"/staff/service-levels/holidays/{holiday_id + 1}/remove").status_code == 404
    assert post_form(client, f"/staff/service-levels/holidays/{holiday_id}/remove").status_code == 302
    with app.app_context():
        assert db.session.scalars(select(Holiday)).all() == []
        actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["service.holiday.add", "service.holiday.remove"]


# ------------------------------------------------------------------ the desk

def test_the_desk_shows_due_times_in_opening_hours_and_filters_the_overdue(app, client, people):
    with app.app_context():
        # Friday 4 December 17:30 in Paris, critical (1 h): due Monday 09:30; at 15:00, 4 h 30 min of
        # opening time late (09:30-12:00, 13:00-15:00).
        late = open_ticket("itsupport-ticket-1", datetime(2026, 12, 4, 16, 30, tzinfo=UTC), "critical", "Late").id
        # Monday 14:00 in Paris, normal (8 h): 1 h used at 15:00, due Tuesday 14:00 (4 h Monday, 4 h Tuesday).
        fresh = open_ticket("itsupport-ticket-1", datetime(2026, 12, 7, 13, 0, tzinfo=UTC), "normal", "Fresh").id
    login(client, people["staff"])
    page = text(client.get("/desk/"))
    assert "Overdue" in page and "due Mon, Dec 7 09:30" in page and "4 h 30 min of opening hours late" in page
    assert "due Tue, Dec 8 14:00" in page and "7 h of opening hours left" in page
    overdue = text(client.get("/desk/?due=overdue"))
    assert f"queue-ticket-{late}" in overdue and f"queue-ticket-{fresh}" not in overdue
    ticket_page = text(client.get(f"/desk/tickets/{late}"))
    assert "due Mon, Dec 7 09:30" in ticket_page
    # Soonest due first puts the critical one first anyway; most critical first too.
    by_due = text(client.get("/desk/?sort=due"))
    assert by_due.index(f"queue-ticket-{late}") < by_due.index(f"queue-ticket-{fresh}")


def test_ratings_show_on_the_desk(app, client, people):
    with app.app_context():
        rated = open_ticket("itsupport-ticket-1", NOW - timedelta(days=2), subject="Rated")
        rated.status, rated.resolved_at, rated.rating, rated.rating_comment = "resolved", NOW, 4, "Quick and kind"
        rated.rated_at = rated.updated_at = NOW
        older = open_ticket("itsupport-ticket-1", NOW - timedelta(days=300), subject="Older")
        older.status, older.resolved_at = "resolved", NOW - timedelta(days=299)
        older.updated_at = older.resolved_at
        db.session.commit()
        rated_id, older_id = rated.id, older.id
    login(client, people["staff"])
    queue = text(client.get("/desk/?status=resolved"))
    assert f"queue-ticket-{rated_id}" in queue and "rated 4 out of 5" in queue and "★★★★☆" in queue
    # What was done reads from the latest activity back, however old the ticket.
    assert queue.index(f"queue-ticket-{rated_id}") < queue.index(f"queue-ticket-{older_id}")
    assert "Quick and kind" in text(client.get(f"/desk/tickets/{rated_id}"))


# ------------------------------------------------------------------ the public page

def answered(count: int, criticality: str = "high", hours: int = 2) -> None:
    """``count`` tickets opened Tuesday 1 December 09:00 in Paris, answered ``hours`` opening hours later."""
    opened = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for index in range(count):
        ticket = open_ticket("itsupport-ticket-1", opened, criticality, f"T{criticality}{hours}{index}")
        ticket.first_response_at = opened + timedelta(hours=hours)
        ticket.updated_at = ticket.first_response_at
    db.session.commit()


def test_the_catalogue_that_promises_it_links_its_service_page(app, client):
    with app.app_context():
        pack(db.session, "itsupport-ticket-1")
        pack(db.session, "toopixel-36")
    catalogue = text(client.get("/"))
    assert catalogue.count("/service/") == 1 and 'href="/service/itsupport"' in catalogue
    assert client.get("/service/itsupport").status_code == 200
    assert client.get("/service/toopixel").status_code == 404
    assert client.get("/service/nothing").status_code == 404


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_no_figure_from_fewer_than_five_tickets(app, client, people):
    with app.app_context():
        answered(4)
    page = text(client.get("/service/itsupport"))
    assert "4 tickets: too few to publish" in page and "<td>2 h</td>" not in page and "<svg" not in page
    assert "Based on 4 tickets answered or resolved in this period." in page
    with app.app_context():
        answered(1)
    # The cache sees the new answer at once.
    page = text(client.get("/service/itsupport"))
    assert "Based on 5 tickets answered or resolved in this period." in page
    assert "<td>2 h</td><td>2 h</td><td>5</td>" in page and "<svg" in page


def test_the_figures_are_kept_until_something_changes(app, client, people, monkeypatch):
    with app.app_context():
        answered(5)
    client.get("/service/itsupport")
    computed = []
    monkeypatch.setattr(figures, "read", lambda *args: computed.append(args) or pytest.fail("recomputed"))
    assert client.get("/service/itsupport").status_code == 200
    assert computed == []


@pytest.mark.parametrize("lang, title, hidden", [
    ("fr", "Temps de réponse et notes", "trop peu pour publier"),
    ("es", "Tiempos de respuesta y valoraciones", "demasiado pocos para publicar"),
])
def test_the_service_page_speaks_french_and_spanish(app, client, people, lang, title, hidden):
    with app.app_context():
        answered(2)
    page = text(client.get(f"/service/itsupport?lang={lang}", headers={"Accept-Language": lang}))
    assert title in page and hidden in page


def test_the_page_says_when_its_figures_were_computed_on_the_providers_clock(app, client):
    # 14:00 UTC is 15:00 in Paris, the clock its opening hours are read on;
    # the page said "at 14:00 UTC" below hours given in Europe/Paris.
    with app.app_context():
        pack(db.session, "itsupport-ticket-1")
    page = text(client.get("/service/itsupport"))
    assert "Figures computed on Dec 7, 2026 3:00\u202fPM." in page and "UTC" not in page
