"""The desk's services (billing.desk) on both engines: tickets with their
first message and files, sanitised messages, time logged and charged in one
transaction, the preview, statuses, ratings, invitations and removal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW,
    assert_verified,
    both,
    buy,
    days,
    held,
    key,
    ledger_app,
    new_client,
    pack,
    person,
    session,
    staff,
)
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.desk import services as desk
from billing.desk.models import Attachment, TicketMessage, TimeEntry
from billing.ledger import services as ledger
from billing.ledger.models import Operation

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture
def rules(tmp_path):
    return desk.AttachmentRules(folder=tmp_path / "attachments", max_bytes=1000,
                                types=frozenset({"image/png", "text/plain", "application/pdf"}), max_files=2)


def open_one(session, account, user, slug="toopixel-36", **options):
    policy = pack(session, slug).policy
    return desk.open_ticket(session, account, user, "Site down", "It shows an error.", now=NOW, policy=policy,
                            **options)


@both
def test_open_ticket_with_its_first_message_and_files(session, rules):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    ticket = open_one(session, account, owner, criticality="high",
                      files=[desk.Upload("shot.png", PNG)], rules=rules)
    assert (ticket.status, ticket.criticality, ticket.unit) == ("open", "high", "credit")
    [message] = desk.thread(session, ticket, internal=False)
    assert message.body == "It shows an error."
    [attachment] = message.attachments
    assert (attachment.original_name, attachment.content_type, attachment.size) == ("shot.png", "image/png", len(PNG))
    assert desk.attachment_path(attachment, rules.folder).read_bytes() == PNG


@both
def test_a_refused_file_writes_nothing(session, rules):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    before = session.scalar(select(func.count()).select_from(TicketMessage))
    for bad in ([desk.Upload("big.png", PNG + b"x" * 2000)], [desk.Upload("x.exe", b"MZ")],
                [desk.Upload("fake.png", b"GIF89a....")], [desk.Upload("a.txt", b"a")] * 3):
        with pytest.raises(desk.DeskError) as error:
            open_one(session, account, owner, files=bad, rules=rules)
        assert error.value.field == "files"
    assert session.scalar(select(func.count()).select_from(TicketMessage)) == before
    assert not rules.folder.exists() or not any(rules.folder.iterdir())


def test_sanitise_lets_no_script_through():
    dirty = ('<p onclick="x()">Hi <script>alert(1)</script><img src=x onerror=alert(2)>'
             '<a href="javascript:alert(3)">a</a><a href="https://ok.example">b</a><style>p{}</style></p>')
    clean = desk.sanitise(dirty)
    for bad in ("<script", "onerror", "onclick", "javascript:", "<img", "<style", "alert(1)"):
        assert bad not in clean
    assert '<a href="https://ok.example" rel="noopener noreferrer nofollow">b</a>' in clean
    assert desk.sanitise("2 < 3 & a\nb") == "2 &lt; 3 &amp; a\nb"


@both
def test_messages_internal_notes_and_first_response(session):
    account, owner = new_client(session)
    clerk = staff(session)
    buy(session, account, "toopixel-36")
    ticket = open_one(session, account, owner)
    desk.post_message(session, ticket, clerk, "look at logs", internal=True, now=NOW + days(1))
    assert ticket.first_response_at is None
    desk.post_message(session, ticket, clerk, "On it", now=NOW + days(2))
    assert ticket.first_response_at == NOW + days(2)
    with pytest.raises(ledger.NotAllowed):
        desk.post_message(session, ticket, owner, "secret", internal=True, now=NOW)
    stranger = new_client(session, "Other")[1]
    with pytest.raises(ledger.NotAllowed):
        desk.post_message(session, ticket, stranger, "hello", now=NOW)
    assert [m.body for m in desk.thread(session, ticket, internal=False)] == ["It shows an error.", "On it"]
    assert len(desk.thread(session, ticket, internal=True)) == 3


@both
def test_log_time_charges_the_total_once_per_key(session):
    account, owner = new_client(session)
    clerk = staff(session)
    buy(session, account, "toopixel-36")
    ticket = open_one(session, account, owner)
    first = desk.log_time(session, ticket, clerk, 12, True, "diagnosis", key("t"), NOW)
    assert held(session, account, "toopixel-36") == 34
    desk.log_time(session, ticket, clerk, 30, False, "emails", key("t"), NOW)
    assert held(session, account, "toopixel-36") == 34
    again = key("t")
    desk.log_time(session, ticket, clerk, 15, True, "fix", again, NOW)
    desk.log_time(session, ticket, clerk, 15, True, "fix", again, NOW)  # double click
    assert (ticket.billable_minutes, ticket.units_charged) == (27, 3)
    assert held(session, account, "toopixel-36") == 33
    assert first.operation is not None
    assert len(desk.time_entries(session, ticket)) == 3
    assert_verified(session, account)


@both
def test_log_time_beyond_a_block_balance_writes_nothing(session):
    account, owner = new_client(session)
    clerk = staff(session)
    buy(session, account, "itsupport-ticket-1")
    ticket = open_one(session, account, owner, slug="itsupport-ticket-1")
    entries = session.scalar(select(func.count()).select_from(TimeEntry))
    with pytest.raises(ledger.InsufficientBalance):
        desk.log_time(session, ticket, clerk, 40, True, "", key("t"), NOW)
    assert session.scalar(select(func.count()).select_from(TimeEntry)) == entries
    assert (ticket.billable_minutes, ticket.units_charged) == (0, 0)


def test_only_staff_log_time(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    ticket = open_one(session, account, owner)
    with pytest.raises(ledger.NotAllowed):
        desk.log_time(session, ticket, owner, 10, True, "", key("t"), NOW)


def test_preview_says_what_more_minutes_cost(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    ticket = open_one(session, account, owner)
    desk.log_time(session, ticket, staff(session), 12, True, "", key("t"), NOW)
    found = desk.preview(ticket, 15)
    assert (found.before.units, found.after.units, found.delta) == (2, 3, 1)
    assert desk.describe_preview(found) == "+15 min → total 27 min → 3 credits, 1 more than now"
    assert desk.describe_preview(desk.preview(ticket, 5)) == "+5 min → total 17 min → 2 credits, no change"
    assert desk.describe_preview(desk.preview(ticket, 5, billable=False)) == "+5 min → not billable → no change"


@both
def test_itsupport_ticket_past_30_minutes_takes_a_second(session):
    account, owner = new_client(session)
    buy(session, account, "itsupport-tickets-20")
    ticket = open_one(session, account, owner, slug="itsupport-tickets-20")
    desk.log_time(session, ticket, staff(session), 25, True, "", key("t"), NOW)
    assert desk.tickets_taken_note(ticket) is None
    desk.log_time(session, ticket, staff(session), 15, True, "", key("t"), NOW)
    assert desk.tickets_taken_note(ticket) == 2
    assert held(session, account, "itsupport-tickets-20") == 18


def test_status_moves_and_rating(session):
    account, owner = new_client(session)
    clerk = staff(session)
    buy(session, account, "toopixel-36")
    ticket = open_one(session, account, owner)
    with pytest.raises(desk.DeskError):
        desk.rate(session, ticket, owner, 5, now=NOW)
    with pytest.raises(ledger.NotAllowed):
        desk.set_status(session, ticket, "resolved", by=owner, now=NOW)
    desk.set_status(session, ticket, "waiting", by=clerk, now=NOW)
    desk.post_message(session, ticket, owner, "here is the info", now=NOW)
    assert ticket.status == "open"
    desk.set_status(session, ticket, "resolved", by=clerk, now=NOW + days(1))
    assert ticket.resolved_at == NOW + days(1)
    with pytest.raises(desk.DeskError):
        desk.rate(session, ticket, owner, 6, now=NOW)
    desk.rate(session, ticket, owner, 4, "quick", now=NOW + days(2))
    assert (ticket.rating, ticket.rating_comment) == (4, "quick")
    desk.set_status(session, ticket, "closed", by=owner, now=NOW + days(3))
    with pytest.raises(desk.DeskError):
        desk.post_message(session, ticket, owner, "again", now=NOW)


@both
def test_invite_accept_remove(session):
    account, owner = new_client(session)
    invitation, token = desk.invite(session, account, owner, " New@Example.com ", "member", now=NOW,
                                    max_age=timedelta(hours=72))
    assert invitation.email == "new@example.com" and token not in invitation.token_hash
    with pytest.raises(desk.InvitationInvalid) as error:
        desk.invitation_for(session, token, now=NOW + timedelta(hours=73))
    assert error.value.reason == "expired"
    user = desk.accept(session, token, now=NOW + timedelta(hours=1), new_user=lambda inv: User(
        email=inv.email, name="New", password_hash="-"))
    assert (user.account_id, user.role) == (account.id, "member")
    with pytest.raises(desk.InvitationInvalid):
        desk.accept(session, token, now=NOW)
    with pytest.raises(ledger.NotAllowed):
        desk.invite(session, account, user, "x@example.com", "member", now=NOW, max_age=timedelta(hours=1))
    desk.remove_user(session, account, user, by=owner, now=NOW)
    assert not user.is_active and user not in desk.pool(session, account)
    with pytest.raises(desk.DeskError):
        desk.remove_user(session, account, owner, by=owner, now=NOW)  # the last owner
    # Invited again, the same person comes back.
    _, token = desk.invite(session, account, owner, "new@example.com", "owner", now=NOW, max_age=timedelta(hours=1))
    assert desk.accept(session, token, now=NOW) is user and user.is_active and user.is_owner


def test_pooled_and_single_user_lots(session):
    account, owner = new_client(session)
    member = person(session, account, role="member")
    buy(session, account, "toopixel-36", owner=owner)
    assert desk.drawable(session, account, member, now=NOW) == []
    with pytest.raises(desk.DeskError):
        open_one(session, account, member)
    assert [b.units for b in desk.drawable(session, account, owner, now=NOW)] == [36]
    assert session.scalar(select(func.count()).select_from(Operation)) >= 1
    assert session.scalar(select(func.count()).select_from(Attachment)) >= 0
